// kill -9 of the daemon, of the FUSE server, or of both, at random moments of a workload of lazy
// Prepares, Views and Removes (issue 14, deliverable 4), extending crash-safety.test.ts to the
// second process. After each kill and restart: every lazy snapshot in the metadata is mounted and
// serves its layer's true bytes, no FUSE mount is left that no snapshot claims, and every complete
// disk-cache file hashes to its diffID. Calls that fail while both processes are alive fail the test.
import t from 'tap';
import { status } from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, mountsUnder, waitUntil } from '../harness/index.js';
import { BUSYBOX_PATH, buildAndPushImages } from '../images/index.js';
import { SnapshotsClient } from './snapshots-client.js';

const ROUNDS = 6;
const REMOTE = 'containerd.io/snapshot/remote';
const killAfterOps = (): number => 2 + Math.floor(Math.random() * 12);
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

t.test('kill -9 of either process during lazy mounts leaves metadata, mounts and caches consistent', async (t) => {
  const h = createHarness(t, 'clip-crash-lazy-');
  const registry = await h.startRegistry();
  const { layered } = await buildAndPushImages({ hostPort: registry.hostPort }, ['layered']);
  const config = join(h.root, 'clip-config.toml');
  // Layers stay on FUSE here (this test is about FUSE mounts surviving kills); extraction of
  // completed layers has its own tests (integration/lazy/extracted-layers.test.ts).
  await writeFile(config, '[registry]\nplain_http = true\n[cache]\nextract_completed = false\n');
  const d = await h.startSnapshotter({ extraArgs: ['--config', config] });
  const { root, address } = h.snapshotterPaths;
  const [l1, l2] = layered.layers as [typeof layered.layers[0], typeof layered.layers[0]];
  const chain1 = l1.diffId;
  const chain2 = `sha256:${sha256(`${chain1} ${l2.diffId}`)}`;
  const labels = (chain: string, digest: string): Record<string, string> => ({
    'containerd.io/snapshot.ref': chain,
    'containerd.io/snapshot/cri.image-ref': layered.ref,
    'containerd.io/snapshot/cri.layer-digest': digest,
  });
  // What each layer's mount must serve.
  const busybox = sha256(await readFile(BUSYBOX_PATH));
  const restores = (): number => d.log().split('\n').filter((l) => l.includes('lazy layers restored')).length;

  /** Prepare both layers lazily (ALREADY_EXISTS is the lazy answer), view the top, remove again. */
  async function workload(c: SnapshotsClient, round: number, p: { ops: number; killed: boolean; onOp(): void }): Promise<void> {
    const expectExists = async (key: string, parent: string, l: Record<string, string>): Promise<void> => {
      const r = await c.codeOf('Prepare', { key, parent, labels: l });
      if (r.code !== status.ALREADY_EXISTS) throw Object.assign(new Error(`Prepare ${key}: ${r.code} ${r.details}`), r);
    };
    for (let i = 0; !p.killed && i < 1_000; i++) {
      try {
        await expectExists(`default/${round}/extract-${i}a ${chain1}`, '', labels(chain1, l1.digest));
        p.ops++;
        p.onOp();
        await expectExists(`default/${round}/extract-${i}b ${chain2}`, chain1, labels(chain2, l2.digest));
        p.ops++;
        p.onOp();
        await c.call('View', { key: `view-${round}-${i}`, parent: chain2 });
        await c.call('Remove', { key: `view-${round}-${i}` });
        if (i % 2 === 1) {
          await c.call('Remove', { key: chain2 });
          await c.call('Remove', { key: chain1 });
        }
        p.ops++;
        p.onOp();
      } catch (err) {
        // After the kill anything may fail (a Prepare whose FUSE server died under it falls back to
        // an ordinary snapshot, by design); before it, nothing may.
        if (p.killed) return;
        throw err;
      }
    }
  }

  /** Everything the metadata says is lazily mounted is, with the right bytes, and nothing else is. */
  async function checkConsistent(round: number): Promise<void> {
    const c = new SnapshotsClient(address);
    try {
      const infos = await c.list();
      const remote = infos.filter((i) => i.labels[REMOTE] !== undefined).map((i) => i.name).sort();
      const claimed = new Set<string>();
      if (remote.includes(chain2)) {
        const view = await c.call<{ mounts: Array<{ options: string[] }> }>('View', { key: `check-${round}`, parent: chain2 });
        const lower = view.mounts[0]?.options.find((o) => o.startsWith('lowerdir='))?.slice(9).split(':') ?? [];
        t.equal(lower.length, 2, `round ${round}: the top layer's view has both lazy layers below`);
        for (const dir of lower) claimed.add(dir);
        t.equal(sha256(await readFile(join(lower[1]!, 'bin/busybox'))), busybox, `round ${round}: layer 1 serves busybox's true bytes`);
        t.equal(await readFile(join(lower[0]!, 'etc/layered.txt'), 'utf8'), 'second layer\n', `round ${round}: layer 2 serves its file`);
        await c.call('Remove', { key: `check-${round}` });
      } else if (remote.includes(chain1)) {
        const view = await c.call<{ mounts: Array<{ source: string; options: string[] }> }>('View', { key: `check-${round}`, parent: chain1 });
        const m = view.mounts[0]!;
        const dir = m.options.find((o) => o.startsWith('lowerdir='))?.slice(9) ?? m.source;
        claimed.add(dir);
        t.equal(sha256(await readFile(join(dir, 'bin/busybox'))), busybox, `round ${round}: layer 1 serves busybox's true bytes`);
        await c.call('Remove', { key: `check-${round}` });
      }
      await c.call('Cleanup', {});
      const fuse = mountsUnder(join(root, 'snapshots')).filter((m) => m.fsType.startsWith('fuse')).map((m) => m.mountPoint);
      t.same(fuse.filter((mp) => !claimed.has(mp)), [], `round ${round}: no FUSE mount that no snapshot claims (${fuse.length} mounts, ${remote.length} lazy snapshots)`);
      t.equal(fuse.length, remote.length, `round ${round}: one FUSE mount per lazy snapshot`);
      const cacheDir = join(root, 'cache', 'layers');
      for (const name of await readdir(cacheDir).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        t.equal(sha256(await readFile(join(cacheDir, name))), name, `round ${round}: cached layer ${name.slice(0, 12)} hashes to its diffID`);
      }
    } finally {
      c.close();
    }
  }

  for (let round = 0; round < ROUNDS; round++) {
    const c = new SnapshotsClient(address);
    const target = killAfterOps();
    let reached!: () => void;
    const reachedTarget = new Promise<void>((resolve) => (reached = resolve));
    const progress = { ops: 0, killed: false, onOp: () => progress.ops >= target && reached() };
    const work = workload(c, round, progress);
    await Promise.race([reachedTarget, work]);
    progress.killed = true;
    // Which process dies: the daemon, the FUSE server, or both (a node-wide crash).
    const victim = (['daemon', 'fuse-server', 'both'] as const)[round % 3]!;
    const before = restores();
    if (victim !== 'fuse-server') await d.kill('SIGKILL');
    if (victim !== 'daemon') await d.killFuseServer('SIGKILL');
    await work;
    c.close();
    t.ok(progress.ops >= target, `round ${round}: ${victim} killed after ${progress.ops} calls`);
    if (d.running()) {
      // Only the FUSE server died: the daemon notices, starts a new one and mounts everything again.
      await waitUntil(`round ${round}: the daemon restored its layers on a new FUSE server`, async () => restores() > before, 60_000);
    } else {
      await d.restart();
      await waitUntil(`round ${round}: the restarted daemon restored its layers`, async () => restores() > before, 60_000);
    }
    await checkConsistent(round);
  }
  t.notMatch(d.log(), /could not re-mount a lazy layer/, 'no lazy layer failed to mount again');
});
