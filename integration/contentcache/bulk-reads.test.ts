/**
 * Bulk reads from the ContentCache (issue 15, deliverable 3), through containerd: node A reads a
 * large file of a lazy layer and publishes the layer; node B's container reads the file whole from
 * the ContentCache, its chunks fetched and checked on the bulk worker thread, byte-exact and with no
 * registry fetch of the layer. Then a chunk is planted under the signed manifest (one 256 KiB piece
 * changed): node C's container still reads the true file, the planted piece refused and counted.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { encodeChunk } from '../../snapshotter/src/contentcache/chunk-codec.js';
import { RedisKeys } from '../../snapshotter/src/contentcache/index.js';
import { eventually, logRecords, metric, pullAndRun, startClusterNode, writeClusterKey } from '../harness/clip-node.js';
import { createHarness } from '../harness/index.js';
import { startRedis } from '../harness/redis.js';
import { pushBigFileImage } from '../images/big-file-image.js';

t.setTimeout(900_000);

const FILE_MIB = 20;
const CHUNK = 4 << 20; // the daemon's default chunk_size_bytes
const BULK_LOG = 'content cache bulk reads: a sequential reader\'s chunks are fetched and checked on a worker thread';

/** Sum of a counter's samples whose labels include `labels`. */
async function counter(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return text.split('\n').filter((l) => l.startsWith(name) && l.includes(labels)).reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
}

t.test('a container on a ContentCache-warm node reads a large file through the bulk worker; a planted piece is refused', async (t) => {
  const [ha, hb, hc] = ['a', 'b', 'c'].map((n) => createHarness(t, `clip-bulk-${n}-`)) as [ReturnType<typeof createHarness>, ReturnType<typeof createHarness>, ReturnType<typeof createHarness>];
  const registry = await ha.startRegistry();
  const { image, payload, tar } = await pushBigFileImage(registry.hostPort, ha.root, 'bulk', FILE_MIB);
  const big = image.layers[1]!;
  const want = createHash('sha256').update(payload).digest('hex');
  const redis = await startRedis(t);
  const raw = new Redis({ port: redis.port, host: '127.0.0.1' });
  t.teardown(() => raw.disconnect());
  const keys = new RedisKeys();
  const keyFile = await writeClusterKey(ha.root);
  const settings = { redisAddresses: [redis.address], keyFile };
  const hashOf = (out: string): string | undefined => out.split(/\s+/)[0];
  const bigGets = (mark: number): number => registry.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${big.digest}`)).length;

  const a = await startClusterNode(ha, 'a', registry, settings);
  t.equal(hashOf((await pullAndRun(a, image.ref, ['sha256sum', '/data/big.bin'], { allowFailure: false })).stdout), want, 'node A read the file (registry)');
  t.ok(await eventually(async () => (await raw.exists(keys.manifest(big.diffId))) === 1, 300_000), 'node A published the layer');

  const b = await startClusterNode(hb, 'b', registry, settings);
  const mark = registry.accessLogLines().length;
  t.equal(hashOf((await pullAndRun(b, image.ref, ['sha256sum', '/data/big.bin'], { allowFailure: false })).stdout), want, 'node B read the file byte-exact');
  t.equal(bigGets(mark), 0, 'node B never fetched the layer from the registry');
  t.ok((await counter(b.metricsUrl, 'clip_read_bytes', 'source="content_cache"')) >= FILE_MIB << 20, 'node B served the file from the ContentCache');
  t.equal(logRecords(b.snap, BULK_LOG).length, 1, 'through the bulk worker (logged once, at its first chunk)');
  t.equal(await counter(b.metricsUrl, 'clip_verification_failures', 'source="content_cache"'), 0, 'nothing refused');

  // A chunk in the middle of the file with its last piece changed, under the genuine signed manifest.
  const at = Math.floor((tar.indexOf(payload.subarray(0, 64)) + (FILE_MIB << 19)) / CHUNK);
  const chunk = Buffer.from(tar.subarray(at * CHUNK, (at + 1) * CHUNK));
  chunk.fill(0x42, CHUNK - 1000);
  await raw.set(keys.chunk(big.diffId, CHUNK, at), await encodeChunk(chunk));
  const c = await startClusterNode(hc, 'c', registry, settings);
  const res = await pullAndRun(c, image.ref, ['sha256sum', '/data/big.bin'], { allowFailure: false });
  t.equal(hashOf(res.stdout), want, 'node C read the true file despite the planted piece');
  t.equal(logRecords(c.snap, BULK_LOG).length, 1, 'node C took the bulk path too');
  t.ok((await counter(c.metricsUrl, 'clip_verification_failures', 'kind="chunk"')) >= 1, 'the planted chunk was refused and counted');
  t.ok(logRecords(c.snap, 'content cache object failed verification; treating it as a miss').length >= 1, 'and logged');
  t.ok((await metric(c.metricsUrl, 'clip_reads', 'registry')) > 0, 'the rest came from the registry');
});
