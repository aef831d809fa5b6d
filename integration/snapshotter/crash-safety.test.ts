// kill -9 at random moments of a Prepare/Commit/Remove workload never leaves metadata corrupt or
// inconsistent with the snapshot directories (issue 2, item 4). An RPC that fails while the daemon
// is alive is a bug, not a crash, and fails the test (issue 18).
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { SnapshotsClient, type CallError } from './snapshots-client.js';

const ROUNDS = 6;

/** Kill after this many completed Prepare/Commit calls: a random moment measured in work, not time. */
const killAfterOps = (): number => 3 + Math.floor(Math.random() * 40);

// What a client sees when the daemon dies under an RPC: the connection is gone or refused.
// Everything else (NOT_FOUND, INVALID_ARGUMENT, INTERNAL from a handler, …) came from a live daemon.
const CONNECTION_LOST = new Set<number>([status.UNAVAILABLE, status.CANCELLED]);
const connectionLostDetails = /Connection dropped|ECONNRESET|ECONNREFUSED|No connection established|RST_STREAM|socket/i;

/** True when `err` is what a call sees because we killed the daemon, not a failed RPC. */
function diedUnderUs(err: unknown, killed: boolean): boolean {
  if (!killed) return false; // nobody killed it: a failure from a live daemon
  const e = err as Partial<CallError>;
  if (typeof e.code !== 'number') return false; // not a gRPC error at all (e.g. a local write failed)
  return CONNECTION_LOST.has(e.code) || (e.code === status.INTERNAL && connectionLostDetails.test(e.details ?? ''));
}

interface Progress {
  ops: number;
  killed: boolean;
  onOp: () => void;
}

async function workload(c: SnapshotsClient, round: number, p: Progress): Promise<void> {
  let parent = '';
  const done = (): void => {
    p.ops++;
    p.onOp();
  };
  for (let i = 0; !p.killed && i < 10_000; i++) {
    const key = `default/${round}/extract-${i} sha256:${round}-${i}`;
    try {
      const res = await c.call<{ mounts: Array<{ source: string; options: string[] }> }>('Prepare', { key, parent });
      done();
      const upper = res.mounts[0]?.options.find((o) => o.startsWith('upperdir='))?.slice(9) ?? res.mounts[0]?.source;
      if (!upper) throw new Error(`Prepare ${key}: no upper directory in ${JSON.stringify(res.mounts)}`);
      await writeFile(join(upper, `f${i}`), 'x'.repeat(100));
      const name = `sha256:${round}-${i}`;
      await c.call('Commit', { name, key });
      done();
      if (i % 3 === 2) {
        await c.call('Prepare', { key: `tmp-${round}-${i}`, parent: name });
        await c.call('Remove', { key: `tmp-${round}-${i}` });
      }
      parent = name;
    } catch (err) {
      if (diedUnderUs(err, p.killed)) return;
      throw err;
    }
  }
}

t.test('kill -9 during a workload leaves consistent state', async (t) => {
  const h = createHarness(t, 'clip-crash-');
  const d = await h.startSnapshotter();
  const { root, address } = h.snapshotterPaths;
  for (let round = 0; round < ROUNDS; round++) {
    if (round > 0) await d.restart();
    const c = new SnapshotsClient(address);
    // Whatever the previous kill left must already be consistent before Cleanup.
    const infos = await c.list();
    const ids = await readdir(join(root, 'snapshots'));
    t.ok(ids.length >= infos.length, `round ${round}: every snapshot has a directory (${infos.length} snapshots, ${ids.length} dirs)`);
    const names = new Set(infos.map((i) => i.name));
    for (const i of infos) {
      if (i.parent) t.ok(names.has(i.parent), `parent ${i.parent} of ${i.name} exists`);
      await c.call('Stat', { key: i.name });
      if (i.kind === 2) await c.call('Mounts', { key: i.name });
    }
    await c.call('Cleanup', {});
    const after = await readdir(join(root, 'snapshots'));
    t.equal(after.length, infos.length, `round ${round}: after Cleanup, directories == snapshots`);
    for (const id of after) t.ok((await stat(join(root, 'snapshots', id, 'fs'))).isDirectory());

    const target = killAfterOps();
    let reached!: () => void;
    const reachedTarget = new Promise<void>((resolve) => (reached = resolve));
    const progress: Progress = { ops: 0, killed: false, onOp: () => progress.ops >= target && reached() };
    const work = workload(c, round, progress);
    // The workload's next call is in flight when the kill lands; a workload failure ends the wait too.
    await Promise.race([reachedTarget, work]);
    progress.killed = true;
    await d.kill('SIGKILL');
    await work;
    t.ok(progress.ops >= target, `round ${round}: killed after ${progress.ops} completed calls (target ${target})`);
    c.close();
  }
  // A final clean start proves the database still opens and serves.
  await d.restart();
  const c = new SnapshotsClient(address);
  t.ok((await c.list()).length > 0, 'work from earlier rounds survived');
  c.close();
  t.equal(await d.kill('SIGTERM'), 0, 'SIGTERM shuts down cleanly with exit code 0');
});
