// kill -9 at random moments of a Prepare/Commit/Remove workload never leaves metadata corrupt or
// inconsistent with the snapshot directories (issue 2, item 4).
import t from 'tap';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, stopDaemon, tempDaemonDir } from './daemon.js';
import { SnapshotsClient } from './snapshots-client.js';

const ROUNDS = 6;

async function workload(c: SnapshotsClient, round: number, stop: { now: boolean }): Promise<void> {
  let parent = '';
  for (let i = 0; !stop.now && i < 10_000; i++) {
    const key = `default/${round}/extract-${i} sha256:${round}-${i}`;
    try {
      const res = await c.call<{ mounts: Array<{ source: string; options: string[] }> }>('Prepare', { key, parent });
      const upper = res.mounts[0]?.options.find((o) => o.startsWith('upperdir='))?.slice(9) ?? res.mounts[0]?.source;
      if (upper) await writeFile(join(upper, `f${i}`), 'x'.repeat(100)).catch(() => undefined);
      const name = `sha256:${round}-${i}`;
      await c.call('Commit', { name, key });
      if (i % 3 === 2) {
        await c.call('Prepare', { key: `tmp-${round}-${i}`, parent: name });
        await c.call('Remove', { key: `tmp-${round}-${i}` });
      }
      parent = name;
    } catch {
      return; // the daemon died under us
    }
  }
}

t.test('kill -9 during a workload leaves consistent state', async (t) => {
  const tmp = await tempDaemonDir();
  t.teardown(tmp.cleanup);
  for (let round = 0; round < ROUNDS; round++) {
    const d = await startDaemon(tmp.root, tmp.socket);
    const c = new SnapshotsClient(tmp.socket);
    // Whatever the previous kill left must already be consistent before Cleanup.
    const infos = await c.list();
    const ids = await readdir(join(tmp.root, 'snapshots'));
    t.ok(ids.length >= infos.length, `round ${round}: every snapshot has a directory (${infos.length} snapshots, ${ids.length} dirs)`);
    const names = new Set(infos.map((i) => i.name));
    for (const i of infos) {
      if (i.parent) t.ok(names.has(i.parent), `parent ${i.parent} of ${i.name} exists`);
      await c.call('Stat', { key: i.name });
      if (i.kind === 2) await c.call('Mounts', { key: i.name });
    }
    await c.call('Cleanup', {});
    const after = await readdir(join(tmp.root, 'snapshots'));
    t.equal(after.length, infos.length, `round ${round}: after Cleanup, directories == snapshots`);
    for (const id of after) t.ok((await stat(join(tmp.root, 'snapshots', id, 'fs'))).isDirectory());

    const stop = { now: false };
    const work = workload(c, round, stop);
    await new Promise((r) => setTimeout(r, 150 + Math.floor(Math.random() * 400)));
    await stopDaemon(d, 'SIGKILL');
    stop.now = true;
    await work;
    c.close();
  }
  // A final clean start proves the database still opens and serves.
  const d = await startDaemon(tmp.root, tmp.socket);
  const c = new SnapshotsClient(tmp.socket);
  t.ok((await c.list()).length > 0, 'work from earlier rounds survived');
  c.close();
  t.equal(await stopDaemon(d, 'SIGTERM'), 0, 'SIGTERM shuts down cleanly with exit code 0');
});
