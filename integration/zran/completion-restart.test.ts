/**
 * Background completion survives a daemon restart (issue 8, items 3 and 5): a cold node starts a
 * container from range reads and begins fetching the rest of each layer slowly; the daemon is
 * stopped halfway; after the restart the next read resumes the completion from the spans already on
 * disk (not from byte 0), the finished layer is checked against its diffID and becomes an ordinary
 * disk-cache entry, and its sparse file goes away.
 */
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runCommand } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { clip, eventually, layerTraffic } from '../harness/clip-node.js';

t.setTimeout(300_000);

/** Touches all three layers; layer 2 (three busybox copies, 3 MB gzip) needs several completion batches. */
const CMD = ['cat', '/data/keep.txt', '/data/modified.txt', '/data/delete-dir/recreated.txt'];
const OUT = 'keep\nv2 from layer 2\nback in layer 3\n';
const zranToml = (rate: number): string =>
  `[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = 65536\ncheckpoint_min_layer_bytes = 0\nrange_reads = true\nrange_completion_bytes_per_sec = ${rate}\nrange_completion_idle_ms = 0\n`;

/** Spans present per sparse layer: `<hex>.spans` holds one non-zero byte per span on disk. */
function sparseRecords(dir: string): Map<string, { present: number; total: number }> {
  const out = new Map<string, { present: number; total: number }>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.spans'))) {
    const rec = readFileSync(join(dir, name));
    out.set(name.slice(0, -'.spans'.length), { present: rec.filter((b) => b !== 0).length, total: rec.length });
  }
  return out;
}

t.test('a daemon stopped during background completion resumes it from the spans on disk', async (t) => {
  const h = createHarness(t, 'clip-complete-');
  const registry = await h.startRegistry();
  const tricky = (await buildAndPushImages({ hostPort: registry.hostPort })).tricky;
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  const head = `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n`;
  await writeFile(config, head + zranToml(100_000));
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--config', config])).code, 0, 'indexes with checkpoints published');
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const sparseDir = join(snap.root, 'cache', 'sparse-layers');
  const digests = tricky.layers.map((l) => l.digest);

  const pulled = await clip(['pull', tricky.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config]);
  t.equal(pulled.code, 0, 'pulled lazily');
  const first = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'complete-1', ...CMD]);
  t.equal(first.stdout, OUT);
  // Stop once the background completion is under way: some layer gains spans after the run.
  const afterRun = sparseRecords(sparseDir);
  const progressed = (): boolean => [...sparseRecords(sparseDir)].some(([hex, r]) => r.present > (afterRun.get(hex)?.present ?? 0));
  t.ok(await eventually(progressed, 60_000), 'background completion fetched spans after the run');
  await snap.stop();
  const before = sparseRecords(sparseDir);
  const partial = [...before.entries()].filter(([, r]) => r.present > 0 && r.present < r.total);
  t.ok(partial.length > 0, `stopped halfway: ${[...before.values()].map((r) => `${r.present}/${r.total}`).join(', ')} spans on disk`);

  const cachedBefore = new Set(existsSync(join(snap.root, 'cache', 'layers')) ? readdirSync(join(snap.root, 'cache', 'layers')) : []);
  await writeFile(config, head + zranToml(50_000_000));
  const mark = registry.accessLogLines().length;
  await snap.restart();
  await c.waitForSnapshotter('clip');
  const again = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'complete-2', ...CMD]);
  t.equal(again.stdout, OUT, 'the container runs on the spans kept across the restart');
  // Sparse files are named by layer state key (diffID + blob + span table), complete layers by
  // diffID: completion removes the sparse record and adds a disk-cache file hashing to its name.
  const recordGone = (key: string): boolean => !existsSync(join(sparseDir, `${key}.spans`));
  t.ok(await eventually(() => partial.every(([key]) => recordGone(key)), 60_000), `every partial layer's sparse record is gone after the restart (${partial.length})`);
  const layersDir = join(snap.root, 'cache', 'layers');
  const completedHexes = (): string[] => readdirSync(layersDir).filter((n) => /^[0-9a-f]{64}$/.test(n) && !cachedBefore.has(n));
  t.ok(await eventually(() => completedHexes().length >= partial.length, 60_000), 'as many new complete disk-cache entries');
  const fresh = completedHexes();
  const completedSize = tricky.layers.filter((l) => fresh.some((hex) => l.diffId === `sha256:${hex}`)).reduce((n, l) => n + l.size, 0);
  const after = layerTraffic(registry, mark, digests);
  t.ok(after.bytes < completedSize, `resumed: ${after.bytes} bytes fetched after the restart, the layers are ${completedSize} bytes compressed`);
  const sum = await runCommand('sha256sum', fresh.map((hex) => join(layersDir, hex)));
  for (const hex of fresh) t.match(sum.stdout, new RegExp(`^${hex} `, 'm'), `layer ${hex.slice(0, 12)} is complete and hashes to its diffID`);
  t.notMatch(snap.log(), /range reads disabled|background completion of a range-read layer failed/, 'no fallback, no failed completion');
});
