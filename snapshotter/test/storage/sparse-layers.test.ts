import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, layerStateKey } from '../../src/storage/index.js';
import { RecordingContentCache, readRange, recordingLogger, tempDir, until } from './fixtures.js';
import { RangeBlobSource, gzipLayer } from './range-fixtures.js';

const layer = gzipLayer();
const ref = { ...layer.ref, gzipCheckpoints: layer.checkpoints };
const deep = layer.tar.length - 3 * 1024 * 1024 + 12345;

t.test('a transient registry failure sends one read down the whole-layer path; range reads stay on', async (t) => {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  blobs.failNext = 1;
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log });
  t.teardown(() => s.close());
  const r = s.open(ref);
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), 'correct bytes');
  t.equal(blobs.opens, 1, 'that read took the whole-layer path');
  const warn = records.find((rec) => rec['msg'] === 'range read failed; this layer uses the whole-layer path for now');
  t.equal(warn?.['code'], 'CLIP_REGISTRY_UNAVAILABLE');
  t.notOk(records.some((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole'), 'not turned off for good');
  await r.close();
});

t.test('sparse layers count against max_size_bytes and are evicted once nothing has them open', async (t) => {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log, maxSizeBytes: 1024 * 1024,
  });
  t.teardown(() => s.close());
  const sparse = join(dir, 'sparse-layers', layerStateKey(ref));
  const r = s.open(ref);
  await readRange(r, deep, 4096);
  await readRange(r, 1000, 4096);
  t.ok(existsSync(sparse), 'sparse file written');
  await s.drain();
  t.ok(existsSync(sparse), 'kept while mounted, although over the limit');
  await r.close();
  // The sparse file is released, then evicted, in the background of close().
  const evicted = (): boolean => records.some((rec) => rec['msg'] === 'evicted sparse layer from disk cache');
  await until('the sparse layer is evicted after its release', evicted);
  await s.drain();
  t.notOk(existsSync(sparse), 'evicted after release');
  t.notOk(existsSync(`${sparse}.spans`), 'with its span record');
  t.ok(records.some((rec) => rec['msg'] === 'evicted sparse layer from disk cache' && Number(rec['bytes']) > 1024 * 1024));
  const again = s.open(ref);
  t.ok((await readRange(again, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), 'read again from the registry');
  await again.close();
});

t.test('spans already on disk are read before asking the ContentCache', async (t) => {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  const cc = new RecordingContentCache('miss');
  const s = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: cc, rangeReads: true });
  t.teardown(() => s.close());
  const r = s.open(ref);
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  // Another node has since published the whole layer: the ContentCache would answer now.
  cc.objects.set(layer.ref.diffId, layer.tar);
  cc.mode = 'hit';
  const asked = cc.calls.filter((c) => c.op === 'readInto').length;
  t.ok((await readRange(r, deep + 100, 4096)).equals(layer.tar.subarray(deep + 100, deep + 4196)));
  t.equal(cc.calls.filter((c) => c.op === 'readInto').length, asked, 'the local span answered; no ContentCache read');
  const far = 2 * 1024 * 1024;
  t.ok((await readRange(r, far, 4096)).equals(layer.tar.subarray(far, far + 4096)));
  t.equal(cc.calls.filter((c) => c.op === 'readInto').length, asked + 1, 'a span not on disk still asks the ContentCache first');
  await r.close();
});
