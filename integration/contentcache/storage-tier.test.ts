/**
 * The ContentCache from the config, inside a LayerStore, against a real Redis: node A downloads
 * and publishes, node B reads only from Redis; a dead Redis falls back to the registry fast; a
 * hung Redis opens the circuit breaker so later reads pay no timeout; `on_unavailable = "error"`.
 */
import t, { type Test } from 'tap';
import { contentCacheStoreOptions, type ContentCache } from '../../snapshotter/src/contentcache/index.js';
import { parseConfig } from '../../snapshotter/src/config/index.js';
import { LayerStore } from '../../snapshotter/src/storage/index.js';
import { FakeBlobSource, makeLayer, readRange, recordingLogger, tempDir, type TestLayer } from '../../snapshotter/test/storage/fixtures.js';
import { waitUntil } from '../harness/index.js';
import { startRedis } from '../harness/redis.js';

const configFor = (address: string, extra = ''): ReturnType<typeof parseConfig> =>
  parseConfig(`[content_cache]\nbackend = "redis"\naddresses = ["${address}"]\nchunk_size_bytes = 65536\ntimeout_ms = 300\nallow_unverified = true\n${extra}`, 'test.toml');

/** A counting wrapper: how often the store actually asked the cache, and why each ask failed. */
function counting(cc: ContentCache): ContentCache & { reads: number; failures: string[] } {
  const wrapped = {
    name: cc.name,
    reads: 0,
    failures: [] as string[],
    readInto: (...a: Parameters<ContentCache['readInto']>) => {
      wrapped.reads++;
      return cc.readInto(...a).catch((err: unknown) => {
        wrapped.failures.push(err instanceof Error ? err.message : String(err));
        throw err;
      });
    },
    has: (key: string, size: number) => cc.has(key, size),
    storeFile: (...a: Parameters<ContentCache['storeFile']>) => cc.storeFile(...a),
    getBlob: (key: string) => cc.getBlob(key),
    putBlob: (key: string, data: Buffer) => cc.putBlob(key, data),
    close: () => cc.close(),
  };
  return wrapped;
}

async function node(t: Test, cfg: ReturnType<typeof parseConfig>, layers: TestLayer[]) {
  const { log, records } = recordingLogger();
  const dir = await tempDir(t);
  const blobs = new FakeBlobSource(layers);
  const opts = contentCacheStoreOptions(cfg.contentCache, log, {});
  const cc = counting(opts.contentCache);
  const store = await LayerStore.create({ cacheDir: dir, blobs, ...opts, contentCache: cc, log, readTimeoutMs: 10_000 });
  t.teardown(async () => {
    await store.close();
    await cc.close();
  });
  return { store, blobs, records, cc };
}

t.test('node A publishes, node B reads every byte from Redis and nothing from the registry', async (t) => {
  const redis = await startRedis(t);
  const layer = makeLayer(600_000);
  const a = await node(t, configFor(redis.address), [layer]);
  t.equal(a.store.contentCache.name, 'redis', 'the configured cache reached the storage layer');
  const ra = a.store.open(layer.ref);
  t.same(await readRange(ra, 1000, 5000), layer.tar.subarray(1000, 6000));
  await ra.close();
  // drain() snapshots the running work; a publish starts only once the download ends.
  await waitUntil('node A published', async () => a.records.some((r) => r['msg'] === 'stored' || r['msg'] === 'store failed'), 10_000, 20);
  t.equal(a.blobs.opens, 1, 'node A downloaded once');
  const stored = a.records.find((r) => r['msg'] === 'stored');
  t.match(stored, { hash: layer.ref.diffId, bytes: layer.tar.length, key: layer.ref.diffId, layer: layer.ref.digest });
  t.ok(a.records.some((r) => r['msg'] === 'storing decompressed layer'), 'storing logged');

  const b = await node(t, configFor(redis.address), [layer]);
  const rb = b.store.open(layer.ref);
  await rb.check();
  for (const [off, len] of [[0, 512], [65_000, 70_000], [layer.tar.length - 3000, 3000]] as const) {
    t.same(await readRange(rb, off, len), layer.tar.subarray(off, off + len), `B reads ${off}+${len}`);
  }
  await rb.close();
  t.equal(b.blobs.opens, 0, 'zero registry downloads on node B');
  t.equal(b.blobs.heads, 0, 'not even a HEAD: check answered by the ContentCache');
  t.match(b.records.find((r) => r['msg'] === 'content cache range read hit' && r['offset'] === 65_000), { level: 20, offset: 65_000, length: 70_000, bytes: 70_000 });
});

t.test('Redis down: reads go to the registry without waiting; "error" policy fails them', async (t) => {
  const redis = await startRedis(t);
  await redis.stop();
  const layers = [makeLayer(100_000), makeLayer(100_000)];
  const n = await node(t, configFor(redis.address), layers);
  for (const l of layers) {
    const r = n.store.open(l.ref);
    t.same(await readRange(r, 10, 100), l.tar.subarray(10, 110));
    await r.close();
  }
  // "Without waiting": every ask failed because nothing is listening, none by waiting out timeout_ms.
  t.ok(n.cc.failures.length > 0, `the cache was asked and failed: ${n.cc.failures.join(' | ')}`);
  t.ok(n.cc.failures.every((m) => /ECONNREFUSED|is reconnecting|Connection is closed/.test(m) && !/timed out/i.test(m)), 'each ask ended by the refused connection, none by the timeout');
  t.ok(n.records.some((r) => r['msg'] === 'content cache unavailable; reading from the registry'));
  await waitUntil('publish attempted', async () => n.records.some((r) => r['msg'] === 'store failed'), 10_000, 20);
  t.ok(n.records.some((r) => r['msg'] === 'store failed' && typeof r['err'] === 'string'), 'publish failure logged');

  const strict = await node(t, configFor(redis.address, 'on_unavailable = "error"'), layers);
  const r = strict.store.open(layers[0]!.ref);
  await t.rejects(readRange(r, 0, 10), { code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' });
  await r.close();
});

t.test('hung Redis: the breaker opens after 5 timeouts and later reads skip the cache', async (t) => {
  const redis = await startRedis(t);
  const layers = Array.from({ length: 9 }, () => makeLayer(20_000));
  const n = await node(t, configFor(redis.address), layers);
  t.equal(await n.store.contentCache.has('sha256:none', 1), false, 'connected');
  await redis.cli('CLIENT', 'PAUSE', '60000', 'ALL');
  for (const l of layers) {
    const r = n.store.open(l.ref);
    t.same(await readRange(r, 0, 100), l.tar.subarray(0, 100));
    await r.close();
  }
  // Each of the first five reads waited for Redis until timeout_ms ended the ask; the later four
  // never asked (reads stays 5), so they cannot have waited for it.
  t.equal(n.cc.reads, 5, 'the cache was asked 5 times, then skipped');
  t.equal(n.cc.failures.length, 5, 'every ask failed');
  t.ok(n.cc.failures.every((m) => /timed out/i.test(m)), `each ended by timeout_ms: ${n.cc.failures.join(' | ')}`);
  t.ok(n.records.some((r) => r['msg'] === 'content cache circuit open; skipping it for reads'));
});
