/**
 * Reads of spans already on disk go to the kernel by splice (issue 15), through containerd on a
 * node with a Redis ContentCache (so every mount's reader is wrapped by the start-profile recorder,
 * the quarantine switch and, with tracing, the start-trace reader): a container reads a large lazy
 * file whole; once readahead has its spans verified in the sparse file, the kernel FUSE driver's
 * READ replies are spliced from there instead of being copied through the daemon. The read must be
 * byte-exact, and `clip_spliced_reads_total` must count such replies.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { startRedis } from '../harness/redis.js';
import { pushBigFileImage } from '../images/big-file-image.js';
import { clip, startClusterNode } from '../harness/clip-node.js';

t.setTimeout(300_000);

const FILE_MIB = 16;
const TOML = [
  '[index]', 'gzip_checkpoints = true', 'checkpoint_span_bytes = 262144', 'checkpoint_min_layer_bytes = 0', 'range_reads = true',
  'range_completion_bytes_per_sec = 0',
  '[cache]', 'extract_completed = false', '',
].join('\n');

/** A counter without labels from the node's Prometheus endpoint (0 when absent). */
async function counter(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.trim().split(/\s+/).pop()) : 0;
}

t.test('a lazy file read whole: replies for spans already on disk are spliced from the sparse file, byte-exact', async (t) => {
  const h = createHarness(t, 'clip-splice-');
  const registry = await h.startRegistry();
  const { image, payload } = await pushBigFileImage(registry.hostPort, h.root, 'splice', FILE_MIB);
  const indexCfg = join(h.root, 'index-config.toml');
  await writeFile(indexCfg, TOML);
  t.equal((await clip(['index', image.ref, '--plain-http', '--config', indexCfg])).code, 0, 'indexes with checkpoints published');

  const redis = await startRedis(t);
  const node = await startClusterNode(h, 'a', registry, { redisAddresses: [redis.address], extraToml: TOML });
  const pulled = await clip(['pull', image.ref, '--address', node.c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, 'pulled (layers mounted lazily)');
  t.equal(await counter(node.metricsUrl, 'clip_spliced_reads_total'), 0, 'nothing spliced before the container');
  const res = await node.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...node.c.runcArgs(), image.ref, 'splice-1', 'sha256sum', '/data/big.bin'], { timeoutMs: 120_000 });
  t.equal(res.stdout.split(/\s+/)[0], createHash('sha256').update(payload).digest('hex'), 'the container read the file byte-exact');
  const spliced = await counter(node.metricsUrl, 'clip_spliced_reads_total');
  t.ok(spliced > 0, `${spliced} READ replies spliced from the sparse file`);
  t.notMatch(node.snap.log(), /range reads disabled/, 'no fallback to whole-layer reads');
});
