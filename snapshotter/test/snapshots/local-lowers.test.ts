/**
 * Lazy layers extracted on disk: new snapshots get the extracted dir as a plain lower dir, older
 * ones keep the FUSE mount they were given, and the FUSE mount retires only when no snapshot
 * reads through it — also after a restart.
 */
import t, { type Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Snapshotter, type Mount, type RemoteLayers } from '../../src/snapshots/index.js';

interface FakeRemote extends RemoteLayers {
  local: Map<string, string>;
  fuse: Set<string>;
  retired: string[];
}

function fakeRemote(): FakeRemote {
  const local = new Map<string, string>();
  const fuse = new Set<string>();
  const retired: string[] = [];
  return {
    local, fuse, retired,
    mount: async (mp) => {
      fuse.add(mp);
      return {};
    },
    check: async () => undefined,
    mountMapped: async () => undefined,
    unmount: async (mp) => void fuse.delete(mp),
    localDir: async (mp) => local.get(mp),
    retire: async (mp) => {
      if (!fuse.has(mp) || !local.has(mp)) return false;
      fuse.delete(mp);
      retired.push(mp);
      return true;
    },
  };
}

async function root(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-local-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const lowerdirs = (ms: Mount[]): string[] => {
  const m = ms[0]!;
  if (m.type === 'bind') return [m.source];
  return (m.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length) ?? '').split(':');
};

t.test('new snapshots read extracted layers; the FUSE mount retires when the last snapshot reading it goes', async (t) => {
  const dir = await root(t);
  const remote = fakeRemote();
  const s = await Snapshotter.open({ root: dir, remote });
  t.teardown(() => s.close());
  await s.prepare('x1', '', { 'containerd.io/snapshot.ref': 'L1' }).catch(() => undefined);
  await s.prepare('x2', 'L1', { 'containerd.io/snapshot.ref': 'L2' }).catch(() => undefined);
  const fuse1 = join(s.snapshotsDir, '1', 'fs');
  const fuse2 = join(s.snapshotsDir, '2', 'fs');
  t.same([...remote.fuse].sort(), [fuse1, fuse2].sort(), 'both layers on FUSE');

  const early = await s.prepare('early', 'L2', {});
  t.same(lowerdirs(early), [fuse2, fuse1], 'a container before completion reads over FUSE');

  // L1 completes and is extracted.
  remote.local.set(fuse1, '/extracted/l1');
  t.equal(await s.retireIdle(), 0, 'not retired while a snapshot reads it over FUSE');
  const late = await s.prepare('late', 'L2', {});
  t.same(lowerdirs(late), [fuse2, '/extracted/l1'], 'a container after completion reads the extracted dir');
  const view = await s.view('v', 'L1', {});
  t.same(view, [{ type: 'bind', source: '/extracted/l1', options: ['ro', 'rbind'] }], 'a view of the layer binds the extracted dir');
  t.same(lowerdirs(await s.mounts('early')), [fuse2, fuse1], 'the early snapshot keeps the mounts it was given');
  t.same(lowerdirs(await s.mounts('late')), [fuse2, '/extracted/l1']);

  await s.remove('early');
  await s.retireIdle();
  t.same(remote.retired, [fuse1], 'retired once nothing reads it over FUSE');
  t.ok(remote.fuse.has(fuse2), 'the layer without an extracted dir stays on FUSE');
  t.same(lowerdirs(await s.mounts('late')), [fuse2, '/extracted/l1'], 'mounts unchanged');
});

t.test('after a restart, recorded choices hold and layers read by no one over FUSE retire', async (t) => {
  const dir = await root(t);
  const remote = fakeRemote();
  const s = await Snapshotter.open({ root: dir, remote });
  await s.prepare('x1', '', { 'containerd.io/snapshot.ref': 'L1' }).catch(() => undefined);
  await s.prepare('x2', '', { 'containerd.io/snapshot.ref': 'L2' }).catch(() => undefined);
  const fuse1 = join(s.snapshotsDir, '1', 'fs');
  const fuse2 = join(s.snapshotsDir, '2', 'fs');
  await s.prepare('on-fuse', 'L2', {});
  remote.local.set(fuse1, '/extracted/l1');
  remote.local.set(fuse2, '/extracted/l2');
  t.same(lowerdirs(await s.prepare('on-disk', 'L1', {})), ['/extracted/l1']);
  s.close();

  const again = fakeRemote();
  again.local.set(fuse1, '/extracted/l1');
  again.local.set(fuse2, '/extracted/l2');
  const s2 = await Snapshotter.open({ root: dir, remote: again });
  t.teardown(() => s2.close());
  await s2.restoreRemote();
  t.same(again.retired, [fuse1], 'the layer only read from disk retires at start; the one a container reads over FUSE stays');
  t.same(lowerdirs(await s2.mounts('on-fuse')), [fuse2], 'a snapshot keeps its FUSE lower across the restart');
  t.same(lowerdirs(await s2.mounts('on-disk')), ['/extracted/l1']);
});
