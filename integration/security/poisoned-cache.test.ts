/**
 * Issue 12 end to end, the ContentCache as an attacker would write it: two nodes with a cluster key
 * share one Redis; after node A published its layers, objects are planted that every CRC accepts —
 * one layer's manifest and chunks copied onto another layer's keys, a crafted unsigned object of
 * the right size carrying other file contents, another layer's index on this layer's key, crafted
 * start profiles and spans. Node B must run the image on its true bytes (from the registry), count
 * the refusals in `clip_verification_failures` and log them, and never serve the planted bytes.
 */
import t from 'tap';
import { gunzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import { chunkCrc, encodeBlob, encodeChunk, encodeManifest } from '../../snapshotter/src/contentcache/chunk-codec.js';
import { RedisKeys } from '../../snapshotter/src/contentcache/index.js';
import { eventually, logRecords, pullAndRun, startClusterNode, startTwoNodeStack, writeClusterKey } from '../harness/clip-node.js';
import { startRedis } from '../harness/redis.js';

t.setTimeout(900_000);
const CHUNK = 4 << 20; // the daemon's default chunk_size_bytes

/** Sum of a counter's samples whose labels include `labels`. */
async function counter(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(url)).text();
  return text.split('\n')
    .filter((l) => l.startsWith(name) && l.includes(labels))
    .reduce((n, l) => n + Number(l.trim().split(/\s+/).pop()), 0);
}

t.test('poisoned ContentCache keys of every kind end in the true bytes (issue 12)', async (t) => {
  const { ha, hb, registry, images } = await startTwoNodeStack(t, 'clip-sec-cc-');
  const redis = await startRedis(t);
  const raw = new Redis({ port: redis.port, host: '127.0.0.1' });
  t.teardown(() => raw.disconnect());
  const keys = new RedisKeys();
  const keyFile = await writeClusterKey(ha.root);
  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address], keyFile });
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address], keyFile });
  const { busybox, tricky } = images;
  const [l1, l2] = [tricky.layers[0]!, tricky.layers[1]!];
  const bb = busybox.layers[0]!;
  const mustRun = { allowFailure: false };

  // Node A reads every layer and publishes it (whole layers, indexes).
  t.equal((await pullAndRun(a, busybox.ref, ['cat', '/etc/hostname'])).code >= 0, true);
  t.equal((await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt', '/data/modified.txt'], mustRun)).stdout, 'keep\nv2 from layer 2\n');
  for (const l of [bb, l1, l2]) {
    t.ok(await eventually(async () => (await raw.exists(keys.manifest(l.diffId))) === 1, 120_000), `node A published ${l.diffId}`);
  }

  // 1. busybox's signed manifest and chunks onto layer 1's keys (a self-consistent, validly signed object).
  for (let i = 0; i < Math.ceil(bb.uncompressedSize / CHUNK); i++) {
    await raw.set(keys.chunk(l1.diffId, CHUNK, i), (await raw.getBuffer(keys.chunk(bb.diffId, CHUNK, i))) as Buffer);
  }
  await raw.set(keys.manifest(l1.diffId), (await raw.get(keys.manifest(bb.diffId))) as string);

  // 2. Layer 2's true tar with one file's contents changed, stored unsigned with valid CRCs.
  const blob = Buffer.from(await (await fetch(`http://${registry.hostPort}/v2/clip-test/tricky/blobs/${l2.digest}`)).arrayBuffer());
  const tar = gunzipSync(blob);
  const at = tar.indexOf('v2 from layer 2\n');
  t.ok(at > 0, 'found the file contents in the layer');
  const planted = Buffer.from(tar);
  planted.write('PLANTED BYTES!!\n', at);
  const crcs: number[] = [];
  for (let i = 0; i * CHUNK < planted.length; i++) {
    const part = planted.subarray(i * CHUNK, (i + 1) * CHUNK);
    crcs.push(chunkCrc(part));
    await raw.set(keys.chunk(l2.diffId, CHUNK, i), await encodeChunk(part));
  }
  await raw.set(keys.manifest(l2.diffId), encodeManifest({ v: 1, size: planted.length, chunkSizeBytes: CHUNK, chunks: crcs.length, crc32: crcs }));

  // The tricky layers' own (signed) indexes stay, so node B reads their chunks from the cache.
  // 3. Indexes: layer 1's signed index on busybox's key, then a crafted unsigned one.
  const l1Index = await raw.getBuffer(keys.blob(`clip-index/${l1.digest}`));
  t.ok(l1Index, 'node A published the layer index');
  await raw.set(keys.blob(`clip-index/${bb.digest}`), l1Index as Buffer);
  // 4. Start profiles and spans: crafted with valid CRCs, and copied between layers.
  for (const l of [l1, l2]) await raw.set(keys.blob(`profile:v1:${l.diffId}`), await encodeBlob(Buffer.from('crafted profile')));
  for (const k of await raw.keys(`${keys.blob('span:')}*`)) await raw.set(k, await encodeBlob(Buffer.alloc(4096, 0x41)));

  t.match((await pullAndRun(b, busybox.ref, ['cat', '/etc/hostname'])).code, Number, 'busybox on node B (moved index refused)');
  await raw.set(keys.blob(`clip-index/${bb.digest}`), await encodeBlob(Buffer.from('not an index, valid CRC')));
  const res = await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt', '/data/modified.txt'], mustRun);
  t.equal(res.stdout, 'keep\nv2 from layer 2\n', 'node B read the true bytes');
  t.notMatch(res.stdout, /PLANTED/);
  const refused = await counter(b.metricsUrl, 'clip_verification_failures', 'source="content_cache"');
  t.ok(refused >= 2, `node B counted ${refused} refused objects`);
  t.ok((await counter(b.metricsUrl, 'clip_verification_failures', 'kind="manifest"')) >= 2, 'both planted manifests refused');
  t.ok((await counter(b.metricsUrl, 'clip_verification_failures', 'kind="index"')) >= 1, 'the moved index refused');
  const logged = logRecords(b.snap, 'content cache object failed verification; treating it as a miss');
  t.ok(logged.length >= 3, `node B logged the refusals (${logged.length})`);
  const after = await raw.get(keys.manifest(l2.diffId));
  t.ok(after === null || [2, 3].includes((JSON.parse(after) as { v: number }).v), 'the planted object was dropped from Redis (or republished signed)');
});
