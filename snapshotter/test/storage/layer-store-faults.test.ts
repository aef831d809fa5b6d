import t from 'tap';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LayerStore } from '../../src/storage/index.js';
import { FakeBlobSource, makeLayer, readRange, recordingLogger, storeOptions as base, tempDir } from './fixtures.js';

t.test('registry errors are retried with backoff, a bounded number of times', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(100_000);
  const blobs = new FakeBlobSource([layer], { failOpens: 2 });
  const store = await LayerStore.create(base(dir, blobs, { maxRetries: 3 }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  t.same(await readRange(r, 50_000, 100), layer.tar.subarray(50_000, 50_100));
  t.equal(blobs.opens, 3, 'two failures, then success');

  const other = makeLayer(10_000);
  const flaky = new FakeBlobSource([other], { failOpens: 10 });
  const store2 = await LayerStore.create(base(await tempDir(t), flaky, { maxRetries: 2 }));
  t.teardown(() => store2.close());
  const r2 = store2.open(other.ref);
  await t.rejects(readRange(r2, 0, 10), { kind: 'unavailable', code: 'CLIP_LAYER_FETCH_FAILED' });
  t.equal(flaky.opens, 3, 'first attempt + 2 retries');
  flaky.behaviour.failOpens = 0;
  t.same(await readRange(r2, 0, 10), other.tar.subarray(0, 10), 'the next read starts a new download');
  t.equal(flaky.opens, 4);
});

t.test('wrong bytes from the registry: data_corrupt, nothing cached, next read retries', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(100_000);
  const sameSize = makeLayer(100_000);
  const blobs = new FakeBlobSource([layer], { wrongBytes: sameSize.blob });
  const { log, records } = recordingLogger();
  const store = await LayerStore.create(base(dir, blobs, { log }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  // Progressive reads see bytes before the end-of-layer hash (the price of not waiting for the whole
  // layer); what must never happen is that the bad layer is kept.
  await readRange(r, 0, 10);
  await store.drain();
  const failed = records.find((x) => x['msg'] === 'layer download failed');
  t.match(failed?.['err'], /expected sha256:/, 'digest mismatch detected');
  t.same(await readdir(dir), [], 'the bad partial file is deleted and nothing is renamed');
  t.equal(blobs.opens, 1, 'corruption is not retried within the download');

  // A longer layer: reads still waiting for the tail fail data_corrupt.
  blobs.behaviour.wrongBytes = makeLayer(200_000).blob;
  await t.rejects(readRange(r, layer.tar.length - 1, 1), { kind: 'data_corrupt', code: 'CLIP_LAYER_SIZE_MISMATCH' });
  blobs.behaviour.wrongBytes = Buffer.from('not gzip and not the layer');
  await t.rejects(readRange(r, layer.tar.length - 1, 1), { kind: 'data_corrupt', code: 'CLIP_LAYER_SIZE_MISMATCH' }, 'a short blob');
  blobs.behaviour.wrongBytes = Buffer.concat([layer.blob.subarray(0, 100), Buffer.alloc(100)]);
  await t.rejects(readRange(r, layer.tar.length - 1, 1), { kind: 'data_corrupt', code: 'CLIP_LAYER_DECOMPRESS_FAILED' });
  t.equal(blobs.opens, 4);

  blobs.behaviour.wrongBytes = undefined;
  t.same(await readRange(r, 0, 100), layer.tar.subarray(0, 100), 'next read downloads again and succeeds');
  await store.drain();
  t.same(await readFile(join(dir, layer.hex)), layer.tar);
  t.same(await readdir(dir), [layer.hex]);
});

t.test('a hung registry: the stall timeout fails the read unavailable; the store recovers', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(100_000);
  const blobs = new FakeBlobSource([layer], { hangOpens: 1 });
  // The read bound is far beyond the stall timeout: if the stall were not detected, the read would
  // end by its own bound, with CLIP_LAYER_READ_TIMEOUT, not the stall's error.
  const store = await LayerStore.create(base(dir, blobs, { readTimeoutMs: 120_000, stallTimeoutMs: 300, maxRetries: 0 }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  await t.rejects(readRange(r, 0, 4096), { kind: 'unavailable', code: 'CLIP_LAYER_FETCH_FAILED', message: /fewer than 65536 bytes in 300 ms/ });
  t.same(await readRange(r, 0, 4096), layer.tar.subarray(0, 4096), 'the next read starts a new attempt');
  t.equal(blobs.opens, 2);
});

t.test('a read waits no longer than readTimeoutMs even while the download lives on', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(100_000);
  let release!: () => void;
  const blobs = new FakeBlobSource([layer], { gateBeforeFirstChunk: new Promise<void>((resolve) => (release = resolve)) });
  // The download is alive but sends nothing until the test says so; no stall timeout can end it
  // first. Only the read bound can fail the read, with its own code.
  // The bound also covers the read after the release: the completed layer's first read waits for
  // its hash on a worker thread, which a loaded machine (CI) may take well over 300 ms to start.
  const store = await LayerStore.create(base(dir, blobs, { readTimeoutMs: 2_000, stallTimeoutMs: 600_000, maxRetries: 0 }));
  t.teardown(() => store.close());
  const r = store.open(layer.ref);
  await t.rejects(readRange(r, 0, 10), { kind: 'unavailable', code: 'CLIP_LAYER_READ_TIMEOUT', message: /within 2000 ms/ });
  t.equal(blobs.opens, 1, 'the download was not abandoned with the read');
  // The same download goes on and serves the next read, without a second request.
  release();
  await store.drain();
  t.same(await readRange(r, 0, 10), layer.tar.subarray(0, 10));
  t.equal(blobs.opens, 1);
});

t.test('crash safety: a .partial file at start is deleted and never served', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(50_000);
  // Same size as the real layer, wrong content: looks complete if anyone trusted it.
  await writeFile(join(dir, `${layer.hex}.partial`), Buffer.alloc(layer.tar.length, 0x41));
  const blobs = new FakeBlobSource([layer]);
  const store = await LayerStore.create(base(dir, blobs));
  t.teardown(() => store.close());
  t.same(await readdir(dir), [], 'deleted at start');
  t.same(await readRange(store.open(layer.ref), 0, 1000), layer.tar.subarray(0, 1000));
  t.equal(blobs.opens, 1, 'fetched, not served from the partial file');
});

t.test('a corrupted disk-cache file is detected, deleted and refetched', async (t) => {
  for (const [what, bad] of [
    ['same size, flipped byte', (tar: Buffer) => Buffer.concat([tar.subarray(0, 700), Buffer.from([tar[700]! ^ 0xff]), tar.subarray(701)])],
    ['truncated', (tar: Buffer) => tar.subarray(0, tar.length - 512)],
  ] as const) {
    const dir = await tempDir(t);
    const layer = makeLayer(80_000);
    await writeFile(join(dir, layer.hex), bad(layer.tar));
    const blobs = new FakeBlobSource([layer]);
    const { log, records } = recordingLogger();
    const store = await LayerStore.create(base(dir, blobs, { log }));
    const r = store.open(layer.ref);
    t.same(await readRange(r, 0, 1024), layer.tar.subarray(0, 1024), `${what}: right bytes`);
    t.equal(blobs.opens, 1, `${what}: refetched`);
    t.ok(records.some((x) => x['msg'] === 'disk cache file corrupt; deleting and refetching'), `${what}: logged`);
    await store.drain();
    t.same(await readFile(join(dir, layer.hex)), layer.tar, `${what}: replaced by the good layer`);
    await store.close();
  }
});

t.test('a good disk-cache file is served without the registry', async (t) => {
  const dir = await tempDir(t);
  const layer = makeLayer(80_000);
  await writeFile(join(dir, layer.hex), layer.tar);
  const blobs = new FakeBlobSource([layer], { missing: true });
  const store = await LayerStore.create(base(dir, blobs));
  t.teardown(() => store.close());
  t.same(await readRange(store.open(layer.ref), 70_000, 5000), layer.tar.subarray(70_000, 75_000));
  t.equal(blobs.opens, 0);
});

t.test('eviction: least recently used unpinned layers go; open layers stay', async (t) => {
  const dir = await tempDir(t);
  const [a, b, c] = [makeLayer(100_000), makeLayer(100_000), makeLayer(100_000)];
  const blobs = new FakeBlobSource([a!, b!, c!]);
  const size = a!.tar.length;
  const store = await LayerStore.create(base(dir, blobs, { maxSizeBytes: Math.floor(size * 2.5) }));
  t.teardown(() => store.close());
  const ra = store.open(a!.ref); // pinned: a mount holds it
  await readRange(ra, 0, 10);
  await store.drain();
  const rb = store.open(b!.ref);
  await readRange(rb, 0, 10);
  await store.drain();
  await rb.close(); // b is cached but no longer mounted
  const rc = store.open(c!.ref);
  await readRange(rc, 0, 10);
  await store.drain();
  let files = (await readdir(dir)).sort();
  t.same(files, [a!.hex, c!.hex].sort(), 'b (unpinned) evicted; a is older but pinned');
  t.ok(store.diskBytes <= size * 2.5);
  t.same(await readRange(ra, size - 10, 10), a!.tar.subarray(size - 10), 'pinned layer still readable');

  // Over the limit with everything pinned: nothing is evicted.
  const rb2 = store.open(b!.ref);
  await readRange(rb2, 0, 10);
  await store.drain();
  files = await readdir(dir);
  t.equal(files.length, 3, 'all three pinned layers kept even over the limit');
  await ra.close();
  await store.drain();
  t.notOk((await readdir(dir)).includes(a!.hex), 'a is evicted once unmounted');
});
