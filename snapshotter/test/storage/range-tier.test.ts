import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore } from '../../src/storage/index.js';
import { existsSync } from 'node:fs';
import { RecordingContentCache, readRange, recordingLogger, tempDir } from './fixtures.js';
import { RangeBlobSource, gzipLayer } from './range-fixtures.js';

const layer = gzipLayer();

async function store(t: Test, blobs: RangeBlobSource, rangeReads = true, more: { rangeCompletionBytesPerSec?: number; contentCache?: RecordingContentCache } = {}) {
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: more.contentCache ?? new NoContentCache(), rangeReads, log,
    rangeCompletionBytesPerSec: more.rangeCompletionBytesPerSec ?? 0,
  });
  t.teardown(() => s.close());
  return { s, records, dir };
}

const deep = layer.tar.length - 3 * 1024 * 1024 + 12345;

t.test('a miss deep in a gzip layer is served by one small range request, byte-exact', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 65536)).equals(layer.tar.subarray(deep, deep + 65536)));
  t.equal(blobs.opens, 0, 'no whole-layer download');
  t.equal(blobs.ranges.length, 1);
  const fetched = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  t.ok(fetched < layer.blob.length / 5, `fetched ${fetched} of ${layer.blob.length} compressed bytes`);
  for (const off of [0, 1024 * 1024 - 7, 5 * 1024 * 1024 + 3, layer.tar.length - 100]) {
    if (!(await readRange(r, off, 100_000)).equals(layer.tar.subarray(off, off + 100_000))) t.fail(`bytes at ${off}`);
  }
  await r.close();
});

t.test('a registry that ignores Range: the layer falls back to the whole download', async (t) => {
  const blobs = new RangeBlobSource(layer);
  blobs.ignoreRange = true;
  const { s, records } = await store(t, blobs);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.opens, 1);
  t.ok(records.some((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole' && rec['code'] === 'CLIP_REGISTRY_RANGE_UNSUPPORTED'));
  await r.close();
});

t.test('a corrupt checkpoint: clear error logged, whole-layer fallback, correct bytes', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s, records } = await store(t, blobs);
  const bad = Buffer.from(layer.checkpoints);
  bad[bad.length - 200]! ^= 0xff; // inside the last window's LZ4 block
  const r = s.open({ ...layer.ref, gzipCheckpoints: bad });
  const off = layer.tar.length - 4096;
  t.ok((await readRange(r, off, 4096)).equals(layer.tar.subarray(off)));
  t.equal(blobs.opens, 1);
  const warn = records.find((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole');
  t.match(String(warn?.['code']), /^CLIP_ZRAN_/);
  await r.close();
});

t.test('with range reads off, checkpoints are ignored', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs, false);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.ranges.length, 0);
  t.equal(blobs.opens, 1);
  await r.close();
});

t.test('background completion: remaining spans at a bounded rate, then a verified, published cache entry', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const cc = new RecordingContentCache('miss');
  const rate = Math.ceil(layer.blob.length / 1.5);
  const { s, dir } = await store(t, blobs, true, { rangeCompletionBytesPerSec: rate, contentCache: cc });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  const started = Date.now();
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  const mid = 6 * 1024 * 1024 + 17;
  t.ok((await readRange(r, mid, 4096)).equals(layer.tar.subarray(mid, mid + 4096)), 'on-demand reads still served during completion');
  await s.drain();
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 800, `completion bounded by the rate: ${elapsed} ms`);
  t.equal(blobs.opens, 0, 'never a whole-blob GET');
  const covered = new Set<number>();
  for (const [a, b] of blobs.ranges) for (let x = a; x < b; x += 4096) covered.add(Math.floor(x / 4096));
  t.ok(covered.size >= Math.floor(layer.blob.length / 4096) - 2, 'the ranges cover the blob');
  t.same(cc.calls.filter((c) => c.op === 'storeFile').map((c) => c.key), [layer.ref.diffId], 'published to the ContentCache');
  t.ok(existsSync(join(dir, 'layers', layer.hex)), 'a complete disk-cache entry');
  t.notOk(existsSync(join(dir, 'sparse-layers', `${layer.hex}.spans`)), 'the sparse record is gone');
  const n = blobs.ranges.length;
  const tail = layer.tar.length - 5000;
  t.ok((await readRange(r, tail, 5000)).equals(layer.tar.subarray(tail)));
  t.equal(blobs.ranges.length, n, 'served from the disk cache');
  await r.close();
});

t.test('restart in the middle of a background completion: stopped promptly, resumed from the spans on disk', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s, dir } = await store(t, blobs, true, { rangeCompletionBytesPerSec: 200_000 });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  await readRange(r, deep, 4096);
  await new Promise((res) => setTimeout(res, 200));
  const started = Date.now();
  await r.close();
  await s.close();
  t.ok(Date.now() - started < 3000, `closed in ${Date.now() - started} ms`);
  t.ok(existsSync(join(dir, 'sparse-layers', `${layer.hex}.spans`)));

  // Restart: a new store on the same directories resumes, fetching only spans not yet on disk.
  const before = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  const again = new RangeBlobSource(layer);
  const s2 = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs: again, contentCache: new NoContentCache(), rangeReads: true, rangeCompletionBytesPerSec: 1e9,
  });
  t.teardown(() => s2.close());
  const r2 = s2.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r2, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), 'a span from the first run, after its hash check');
  await s2.drain();
  const after = again.ranges.reduce((n, [a, b]) => n + b - a, 0);
  t.ok(before > 0 && after < layer.blob.length && after + before >= layer.blob.length - 64, `resumed: ${before} + ${after} of ${layer.blob.length}`);
  t.ok(existsSync(join(dir, 'layers', layer.hex)), 'completed after the restart');
  const tail = layer.tar.length - 5000;
  t.ok((await readRange(r2, tail, 5000)).equals(layer.tar.subarray(tail)));
  await r2.close();
});
