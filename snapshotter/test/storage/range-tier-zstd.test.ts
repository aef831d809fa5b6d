/** The range tier over multi-frame zstd layers: the LayerStore path, and its fallbacks to the whole layer. */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, type LayerRef } from '../../src/storage/index.js';
import { encodeZstdFrameTable } from '../../src/zran/index.js';
import { readRange, recordingLogger, tempDir, type TestLayer } from './fixtures.js';
import { sampleData } from '../zran/fixtures.js';
import { RangeBlobSource } from './range-fixtures.js';
import { MULTI_FRAME, buildZstd, zstd } from '../zran/zstd-fixtures.js';

/** A layer (12 MiB, by pzstd unless told) with its encoded frame table (1 MiB spans). */
function zstdLayer(compress: (d: Buffer) => Buffer = MULTI_FRAME['pzstd -1']!, seed = 77, size = 12 * 1024 * 1024): TestLayer & { frames: Buffer | undefined } {
  const tar = sampleData(size, seed);
  const blob = compress(tar);
  const { table } = buildZstd(blob, { spanBytes: 1024 * 1024, minLayerBytes: 0 });
  const hex = createHash('sha256').update(tar).digest('hex');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const ref: LayerRef = { ref: 'registry.test/app:1', digest, diffId: `sha256:${hex}`, uncompressedSize: tar.length };
  return { tar, blob, hex, ref, frames: table ? encodeZstdFrameTable(table) : undefined };
}

/** Serves the right whole blob but wrong bytes for every Range request. */
class LyingRangeSource extends RangeBlobSource {
  override async fetchRange(ref: LayerRef, start: number, end: number): Promise<Buffer> {
    const b = await super.fetchRange(ref, start, end);
    b[b.length >> 1]! ^= 0x01;
    return b;
  }
}

const layer = zstdLayer();
const deep = layer.tar.length - 3 * 1024 * 1024 + 4321;

async function store(t: Test, blobs: RangeBlobSource) {
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, rangeCompletionBytesPerSec: 0, log });
  t.teardown(() => s.close());
  return { s, records };
}

const fellBack = (records: Array<Record<string, unknown>>) => records.find((r) => r['msg'] === 'range reads disabled for layer; fetching it whole');

t.test('a miss deep in a zstd layer is served by one range request for its frames, byte-exact', async (t) => {
  t.ok(layer.frames, 'the pzstd layer has a frame table');
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs);
  const r = s.open({ ...layer.ref, zstdFrames: layer.frames });
  t.ok((await readRange(r, deep, 65536)).equals(layer.tar.subarray(deep, deep + 65536)));
  t.equal(blobs.opens, 0, 'no whole-layer download');
  t.equal(blobs.ranges.length, 1);
  const fetched = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  t.ok(fetched < layer.blob.length / 3, `fetched ${fetched} of ${layer.blob.length} compressed bytes`);
  for (const off of [0, 2 * 1024 * 1024 - 7, 5 * 1024 * 1024 + 3, layer.tar.length - 100]) {
    if (!(await readRange(r, off, 100_000)).equals(layer.tar.subarray(off, off + 100_000))) t.fail(`bytes at ${off}`);
  }
  t.equal(blobs.opens, 0);
  await r.close();
});

t.test('a lying registry: data_corrupt logged, whole-layer fallback, correct bytes', async (t) => {
  const blobs = new LyingRangeSource(layer);
  const { s, records } = await store(t, blobs);
  const r = s.open({ ...layer.ref, zstdFrames: layer.frames });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.ranges.length, 1, 'one range tried');
  t.equal(blobs.opens, 1, 'then the whole layer');
  t.match(String(fellBack(records)?.['code']), /^CLIP_ZRAN_(SPAN_DIGEST|ZSTD_DECODE|ZSTD_FRAME)$/);
  await r.close();
});

t.test('a corrupt frame table: whole-layer fallback, correct bytes', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s, records } = await store(t, blobs);
  const bad = Buffer.from(layer.frames!);
  bad.writeUInt32LE(bad.readUInt32LE(12) + 1, 12); // frame count no longer adds up
  const r = s.open({ ...layer.ref, zstdFrames: bad });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.ranges.length, 0);
  t.equal(blobs.opens, 1);
  t.equal(fellBack(records)?.['code'], 'CLIP_ZRAN_TABLE_CORRUPT');
  await r.close();
});

t.test("another layer's table: refused (other size) or caught by the span digests (same size)", async (t) => {
  const sameSize = zstdLayer(MULTI_FRAME['one frame per 96 KiB']!, 78);
  const otherSize = zstdLayer(MULTI_FRAME['pzstd -1']!, 77, 8 * 1024 * 1024);
  for (const [name, frames, code] of [['same size', sameSize.frames, 'CLIP_ZRAN_SPAN_DIGEST'], ['other size', otherSize.frames, 'CLIP_ZRAN_TABLE_CORRUPT']] as const) {
    const blobs = new RangeBlobSource(layer);
    const { s, records } = await store(t, blobs);
    const r = s.open({ ...layer.ref, zstdFrames: frames });
    t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), `${name}: correct bytes`);
    t.equal(blobs.opens, 1, `${name}: whole-layer download`);
    t.match(fellBack(records)?.['code'], name === 'same size' ? /^CLIP_ZRAN_(SPAN_DIGEST|ZSTD_DECODE|ZSTD_FRAME)$/ : code);
    await r.close();
  }
});

t.test('a single-frame zstd layer has no table and is fetched whole', async (t) => {
  const single = zstdLayer((d) => zstd(d));
  t.equal(single.frames, undefined);
  const blobs = new RangeBlobSource(single);
  const { s } = await store(t, blobs);
  const r = s.open(single.ref);
  t.ok((await readRange(r, deep, 4096)).equals(single.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.ranges.length, 0);
  t.equal(blobs.opens, 1);
  await r.close();
});
