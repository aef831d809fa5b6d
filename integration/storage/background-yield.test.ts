/**
 * Background work yields to containers' FUSE requests (issue 15), through real containerd with a
 * Redis ContentCache: a container keeps the node's FUSE mounts busy (a lookup of a new name per
 * shell-loop turn, which the kernel cannot answer from its caches) while a 24 MiB lazy layer is read
 * whole, then completes in the background — the rest of its spans, its sha256, its publish to the
 * ContentCache, its extraction. Every stage's batches must have waited for the reads
 * (`clip_background_waits_total{stage}`), some let through by the bound (`outcome="max_delay"`),
 * and the work must still finish while the reads go on; the bytes, read before and after
 * extraction, must be the layer's.
 *
 * The idle time (1 s) is five times the bound (200 ms): a batch waits whenever the loop's last
 * request is under 1 s old, so the counts do not depend on how fast the machine runs the loop.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { startRedis } from '../harness/redis.js';
import { pushBigFileImage } from '../images/big-file-image.js';
import { clip, eventually, logRecords, startClusterNode } from '../harness/clip-node.js';
import { extractedDirOf } from '../harness/extracted-dirs.js';

t.setTimeout(600_000);

const FILE_MIB = 24;
const STAGES = ['fill', 'hash', 'publish', 'extract'] as const;
const INDEX_TOML = ['[index]', 'gzip_checkpoints = true', 'checkpoint_span_bytes = 262144', 'checkpoint_min_layer_bytes = 0', 'range_reads = true'];
const NODE_TOML = [
  ...INDEX_TOML,
  // Completion starts with the first range read and runs whenever the gate lets it.
  'range_completion_bytes_per_sec = 67108864', 'range_completion_idle_ms = 0',
  '[prefetch]', 'enabled = false',
  '[reads]', 'background_idle_ms = 1000', 'background_max_delay_ms = 200', 'background_run_ms = 0', 'background_fill_yields = true',
  '[cache]', 'extract_completed = true', '',
].join('\n');

/** Samples of `name` from a Prometheus endpoint, by their label text (`stage="fill",outcome="idle"`). */
async function samples(url: string, name: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await (await fetch(url)).text()).split('\n')) {
    const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`).exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** The sum of the samples whose labels include every one of `labels`. */
function sum(s: Map<string, number>, ...labels: string[]): number {
  let n = 0;
  for (const [k, v] of s) if (labels.every((l) => k.split(',').includes(l))) n += v;
  return n;
}

t.test('a layer completes, publishes and extracts while a container keeps reading: its batches wait, and it still finishes', async (t) => {
  const h = createHarness(t, 'clip-bg-yield-');
  const registry = await h.startRegistry();
  const { image, payload } = await pushBigFileImage(registry.hostPort, h.root, 'bg-yield', FILE_MIB);
  const big = image.layers[image.layers.length - 1]!;
  const want = createHash('sha256').update(payload).digest('hex');
  const indexCfg = join(h.root, 'index-config.toml');
  await writeFile(indexCfg, `${INDEX_TOML.join('\n')}\n`);
  t.equal((await clip(['index', image.ref, '--plain-http', '--config', indexCfg])).code, 0, 'indexes with checkpoints published');

  const redis = await startRedis(t);
  const node = await startClusterNode(h, 'a', registry, { redisAddresses: [redis.address], extraToml: NODE_TOML });
  const pulled = await clip(['pull', image.ref, '--address', node.c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, 'pulled (layers mounted lazily)');

  // The reader: a lookup of a new name per turn goes to every FUSE lower of the overlay.
  await node.c.ctr(['run', '-d', '--snapshotter', 'clip', ...node.c.runcArgs(), image.ref, 'busy', 'sh', '-c', 'i=0; while :; do i=$((i+1)); [ -e /data/n$i ]; done']);
  const running = async (): Promise<boolean> => /\bbusy\s+\d+\s+RUNNING\b/.test((await node.c.ctr(['task', 'ls'])).stdout);
  t.ok(await running(), 'the reading container runs');

  // Read the big layer whole (lazily, from its spans): this starts its background completion.
  const first = await node.c.ctr(['task', 'exec', '--exec-id', 'sum-1', 'busy', 'sha256sum', '/data/big.bin'], { timeoutMs: 180_000 });
  t.equal(first.stdout.split(/\s+/)[0], want, 'read lazily while the loop runs: byte-exact');

  const extracted = (): boolean => existsSync(join(extractedDirOf(node.snap.root, big.diffId), 'record.json'));
  const stored = (): boolean => logRecords(node.snap, 'stored').some((r) => r['diff_id'] === big.diffId);
  t.ok(await eventually(() => extracted() && stored(), 300_000), 'the layer completed, was published and extracted');
  t.ok(await running(), 'while the container kept reading: the bound let the work through');
  t.equal(logRecords(node.snap, 'layer extraction failed; it stays served over FUSE').length, 0, 'no extraction failed');
  t.equal(logRecords(node.snap, 'store failed').length, 0, 'no publish failed');

  const waits = await samples(node.metricsUrl, 'clip_background_waits_total');
  const seconds = await samples(node.metricsUrl, 'clip_background_wait_seconds_total');
  for (const stage of STAGES) {
    const n = sum(waits, `stage="${stage}"`);
    t.ok(n > 0, `${stage}: ${n} batches waited for the reads`);
    t.ok(sum(seconds, `stage="${stage}"`) > 0, `${stage}: ${sum(seconds, `stage="${stage}"`).toFixed(2)} s waited`);
  }
  const forced = sum(waits, 'outcome="max_delay"');
  t.ok(forced > 0, `${forced} batches let through by the bound while the reads went on`);

  await node.c.ctr(['task', 'kill', '-s', 'SIGKILL', 'busy']);
  t.ok(await eventually(async () => !(await running()), 30_000), 'the reading container stopped');
  await node.c.ctr(['task', 'delete', 'busy'], { allowFailure: true });
  await node.c.ctr(['container', 'delete', 'busy'], { allowFailure: true });
  // A new container gets the extracted layer as a plain directory.
  const again = await node.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...node.c.runcArgs(), image.ref, 'sum-2', 'sha256sum', '/data/big.bin'], { timeoutMs: 120_000 });
  t.equal(again.stdout.split(/\s+/)[0], want, 'the completed, extracted layer reads byte-exact');
  const manifests = (await redis.cli('KEYS', '*:manifest')).split('\n').filter((k) => k.includes(big.diffId));
  t.equal(manifests.length, 1, 'the layer is complete in the ContentCache (its manifest, written last)');
});
