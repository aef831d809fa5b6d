import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NoContentCache } from '../../src/contentcache/index.js';
import { ClipError } from '../../src/errors/index.js';
import { LayerStore, type LayerStoreOptions } from '../../src/storage/index.js';
import { FakeBlobSource, RecordingContentCache, makeLayer, readRange, recordingLogger, storeOptions as base, tempDir } from './fixtures.js';

t.test('a LayerStore cannot be built without a ContentCache', async (t) => {
  const dir = await tempDir(t);
  const blobs = new FakeBlobSource([]);
  // @ts-expect-error contentCache is required; this line stops compiling if it ever becomes optional
  const noCache: LayerStoreOptions = { cacheDir: dir, blobs };
  t.throws(() => new LayerStore(noCache), { name: 'ClipError', kind: 'invalid_argument', code: 'CLIP_STORAGE_BAD_OPTIONS' });
  const store = new LayerStore({ cacheDir: dir, blobs, contentCache: new NoContentCache() });
  t.equal(store.contentCache.name, 'none', 'the cache handed in is the one the store reads through');
});

t.test('cold read: registry → disk, verified, published to the ContentCache in the background', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(300_000);
  const blobs = new FakeBlobSource([layer]);
  const cc = new RecordingContentCache('miss');
  const { log, records } = recordingLogger();
  const store = await LayerStore.create(base(dir, blobs, { contentCache: cc, log }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  t.same(await readRange(r, 1000, 5000), layer.tar.subarray(1000, 6000));
  await store.drain();
  t.equal(blobs.opens, 1);
  t.same(await readFile(join(dir, layer.hex)), layer.tar, 'complete file under its diffID hex');
  t.same((await readdir(dir)).filter((n) => n.endsWith('.partial')), [], 'no partial file left');
  const stores = cc.calls.filter((c) => c.op === 'storeFile');
  t.same(stores, [{ op: 'storeFile', key: layer.ref.diffId, args: [join(dir, layer.hex), layer.tar.length] }]);
  t.ok(cc.calls.some((c) => c.op === 'readInto' && c.key === layer.ref.diffId), 'the ContentCache was asked before the registry');
  const msgs = records.filter((r) => r['diff_id'] === layer.ref.diffId).map((r) => r['msg']);
  t.ok(msgs.includes('storing decompressed layer') && msgs.includes('stored'), `publish logged: ${msgs.join(', ')}`);
  const stored = records.find((r) => r['msg'] === 'stored');
  t.equal(stored?.['bytes'], layer.tar.length);
  t.equal(stored?.['layer'], layer.ref.digest);
  t.type(stored?.['duration_ms'], 'number');
  // Served from disk now: the registry is not asked again, even after the source breaks.
  blobs.behaviour.missing = true;
  t.same(await readRange(r, layer.tar.length - 100, 4096), layer.tar.subarray(layer.tar.length - 100), 'read clamped at the end');
  t.equal(await r.read(Buffer.alloc(10), 0, 10, layer.tar.length + 5), 0, 'read past the end');
  t.equal(blobs.opens, 1);
});

t.test('a failed publish is logged and does not affect reads', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(50_000);
  const cc = new RecordingContentCache('miss');
  cc.storeFile = async () => {
    throw new Error('redis went away');
  };
  const { log, records } = recordingLogger();
  const store = await LayerStore.create(base(dir, new FakeBlobSource([layer]), { contentCache: cc, log }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  t.same(await readRange(r, 0, 100), layer.tar.subarray(0, 100));
  await store.drain();
  const failed = records.find((r) => r['msg'] === 'store failed');
  t.equal(failed?.['err'], 'redis went away');
  t.same(await readRange(r, 100, 100), layer.tar.subarray(100, 200));
});

t.test('ContentCache hit: the registry is never called', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(100_000);
  const blobs = new FakeBlobSource([layer]);
  const cc = new RecordingContentCache('hit');
  cc.objects.set(layer.ref.diffId, layer.tar);
  const store = await LayerStore.create(base(dir, blobs, { contentCache: cc }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  t.same(await readRange(r, 4096, 65536), layer.tar.subarray(4096, 4096 + 65536));
  await r.check();
  await store.drain();
  t.equal(blobs.opens, 0, 'no download');
  t.equal(blobs.heads, 0, 'check answered by the ContentCache');
  t.notOk(cc.calls.some((c) => c.op === 'storeFile'), 'nothing to publish');
});

t.test('ContentCache unavailable: registry by default, error when configured', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(20_000);
  const blobs = new FakeBlobSource([layer]);
  const { log, records } = recordingLogger();
  const strict = await LayerStore.create(base(dir, blobs, { contentCache: new RecordingContentCache('unavailable'), onContentCacheUnavailable: 'error' }));
  await t.rejects(readRange(strict.open(layer.ref), 0, 10), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' });
  await strict.close();
  t.equal(blobs.opens, 0);
  const store = await LayerStore.create(base(dir, blobs, { contentCache: new RecordingContentCache('unavailable'), log }));
  t.teardown(() => store.close());
  t.same(await readRange(store.open(layer.ref), 0, 10), layer.tar.subarray(0, 10));
  t.equal(blobs.opens, 1);
  t.ok(records.some((r) => r['msg'] === 'content cache unavailable; reading from the registry'), 'fallback logged');
});

t.test('single flight: 10 concurrent reads of a cold layer make one download', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(1 << 20);
  const blobs = new FakeBlobSource([layer], { chunkSize: 32 * 1024, delayMs: 2 });
  const store = await LayerStore.create(base(dir, blobs));
  t.teardown(() => store.close());
  const readers = [store.open(layer.ref), store.open(layer.ref)];
  const offsets = Array.from({ length: 10 }, (_, i) => Math.floor((i * layer.tar.length) / 10));
  const results = await Promise.all(offsets.map((off, i) => readRange(readers[i % 2]!, off, 8192)));
  offsets.forEach((off, i) => t.same(results[i], layer.tar.subarray(off, off + 8192), `read at ${off}`));
  t.equal(blobs.opens, 1);
});

t.test('progressive: a read of the first 4 KiB resolves before the download finishes', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(1 << 20);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const blobs = new FakeBlobSource([layer], { chunkSize: 64 * 1024, gateAfterFirstChunk: gate });
  const store = await LayerStore.create(base(dir, blobs, { readTimeoutMs: 10_000 }));
  t.teardown(async () => (open(), store.close()));
  const r = store.open(layer.ref);
  const tail = readRange(r, layer.tar.length - 4096, 4096);
  let tailDone = false;
  void tail.then(() => (tailDone = true));
  t.same(await readRange(r, 0, 4096), layer.tar.subarray(0, 4096), 'head served while the source is paused');
  t.notOk(tailDone, 'the end of the layer is not there yet');
  t.notOk((await readdir(dir)).includes(layer.hex), 'the layer is not complete');
  open();
  t.same(await tail, layer.tar.subarray(layer.tar.length - 4096));
});

t.test('zstd and uncompressed blobs are detected by their magic bytes', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const zstd = (b: Buffer) => execFileSync('zstd', ['-q', '-c', '-3'], { input: b });
  for (const [name, encode] of [['zstd', zstd], ['none', (b: Buffer) => b]] as const) {
    const dir = await tempDir(t);
    const layer = makeLayer(200_000, encode);
    const store = await LayerStore.create(base(dir, new FakeBlobSource([layer])));
    t.same(await readRange(store.open(layer.ref), 150_000, 9000), layer.tar.subarray(150_000, 159_000), name);
    await store.drain();
    t.same(await readFile(join(dir, layer.hex)), layer.tar, `${name}: whole layer verified`);
    await store.close();
  }
});

t.test('check: disk, ContentCache, registry HEAD, else unavailable', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(10_000);
  const blobs = new FakeBlobSource([layer]);
  const cc = new RecordingContentCache('miss');
  const store = await LayerStore.create(base(dir, blobs, { contentCache: cc }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  await r.check();
  t.equal(blobs.heads, 1, 'registry HEAD when nothing is local');
  blobs.behaviour.missing = true;
  await t.rejects(r.check(), { kind: 'unavailable', code: 'CLIP_LAYER_UNAVAILABLE' });
  cc.objects.set(layer.ref.diffId, layer.tar);
  await r.check();
  cc.objects.clear();
  blobs.behaviour.missing = false;
  await readRange(r, 0, 1);
  await store.drain();
  blobs.behaviour.missing = true;
  const heads = blobs.heads;
  await r.check();
  t.equal(blobs.heads, heads, 'on disk: no HEAD');
});

t.test('bad arguments are invalid_argument', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(1000);
  const store = await LayerStore.create(base(dir, new FakeBlobSource([layer])));
  t.teardown(() => store.close());
  t.throws(() => store.open({ ...layer.ref, diffId: 'sha256:nothex' }), ClipError);
  const r = store.open(layer.ref);
  await t.rejects(() => r.read(Buffer.alloc(4), 0, 8, 0), { kind: 'invalid_argument', code: 'CLIP_LAYER_BAD_RANGE' });
});

t.test('a complete cached layer is served at once from the page cache, and offers its file for splicing', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(200_000);
  const blobs = new FakeBlobSource([layer]);
  const store = await LayerStore.create(base(dir, blobs, { contentCache: new NoContentCache() }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  const cold = Buffer.alloc(100);
  t.equal(r.readNow?.(cold, 0, 100, 0), 0, 'not on disk yet: nothing at once');
  t.equal(r.diskRange?.(0, 100), undefined, 'not on disk yet: no file range');
  await readRange(r, 0, 10); // the download completes the layer on disk
  await store.drain();
  const before = store.ledger.get(layer.ref.diffId)?.served.disk ?? 0;
  const buf = Buffer.alloc(5000, 0xee);
  const n = r.readNow?.(buf, 1000, 4000, 7000);
  t.equal(n, 4000, 'the file was just written: all of it in the page cache');
  t.same(buf.subarray(1000), layer.tar.subarray(7000, 11_000), 'the layer bytes, at the buffer offset');
  t.equal(buf[999], 0xee, 'nothing before the buffer offset touched');
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, layer.tar.length), 0, 'at the end: nothing');
  const range = r.diskRange?.(5000, 3000);
  t.ok(range, 'a complete layer has a file range');
  t.equal(range?.position, 5000, 'the disk cache file is the uncompressed layer: same offsets');
  t.equal(r.diskRange?.(layer.tar.length - 10, 20), undefined, 'not past the end of the layer');
  range?.served(3000);
  t.equal((store.ledger.get(layer.ref.diffId)?.served.disk ?? 0) - before, 7000, 'both counted as disk reads in the ledger');
  await r.close();
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 0, 'a closed reader serves nothing at once');
  t.equal(r.diskRange?.(0, 10), undefined, 'nor a file range');
});
