/**
 * A lazily served layer's Prepare writes its metadata with one fsync, not two (issue 15: per-layer
 * cost of a pull); a Prepare the remote declines still leaves a durable active snapshot, and every
 * outcome survives closing and reopening the database.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Test } from 'tap';
import { Kind, Snapshotter, type RemoteLayers } from '../../src/snapshots/index.js';

const REF = 'containerd.io/snapshot.ref';
const C0 = `sha256:${'a'.repeat(64)}`;
const C1 = `sha256:${'b'.repeat(64)}`;

/** Serves a layer when its labels say `test.serve`, declines otherwise. */
function fakeRemote(): RemoteLayers {
  return {
    mount: async (_mp, labels) => (labels['test.serve'] === 'yes' ? { 'test.served': 'yes' } : undefined),
    check: async () => undefined,
    mountMapped: async () => undefined,
    unmount: async () => undefined,
  };
}

async function open(t: Test, root?: string): Promise<{ s: Snapshotter; root: string }> {
  const dir = root ?? (await mkdtemp(join(tmpdir(), 'clip-prepare-syncs-')));
  const s = await Snapshotter.open({ root: dir, remote: fakeRemote() });
  if (root === undefined) t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { s, root: dir };
}

t.test('a remote Prepare commits its layer with one durable write', async (t) => {
  const { s, root } = await open(t);
  const before = s.metadataSyncs;
  const err = await s.prepare('ns/1/extract-1 ' + C0, '', { [REF]: C0, 'test.serve': 'yes' }).then(() => undefined, (e: unknown) => e as { code?: string });
  t.equal(err?.code, 'CLIP_REMOTE_PREPARED', 'answered "already exists": served lazily');
  t.equal(s.metadataSyncs - before, 1, 'one fsync for the row and its commit');
  const info = await s.stat(C0);
  t.equal(info.kind, Kind.Committed);
  s.close();
  const again = await open(t, root);
  t.teardown(() => again.s.close());
  t.equal((await again.s.stat(C0)).labels['test.served'], 'yes', 'the committed layer is in the database');
  t.rejects(again.s.stat('ns/1/extract-1 ' + C0), { code: 'CLIP_SNAPSHOT_NOT_FOUND' }, 'the active row became the committed one');
});

t.test('a Prepare the remote declines leaves a durable active snapshot', async (t) => {
  const { s, root } = await open(t);
  const before = s.metadataSyncs;
  const mounts = await s.prepare('ns/1/extract-2 ' + C1, '', { [REF]: C1 });
  t.equal(mounts.length, 1, 'an ordinary snapshot to unpack into');
  t.ok(s.metadataSyncs - before >= 1, 'made durable before the answer');
  s.close();
  const again = await open(t, root);
  t.teardown(() => again.s.close());
  t.equal((await again.s.stat('ns/1/extract-2 ' + C1)).kind, Kind.Active, 'the active snapshot is in the database');
});

t.test('Prepares without a target ref are durable as before', async (t) => {
  const { s } = await open(t);
  t.teardown(() => s.close());
  const before = s.metadataSyncs;
  await s.prepare('plain', '', {});
  t.equal(s.metadataSyncs - before, 1);
});
