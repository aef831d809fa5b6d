import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore } from '../../src/storage/index.js';
import {
  decodeCheckpointTable, gzipSpanCodec, isPackedTable, loadZran, packWindows, spanCodecFor, spanCompressedRange, unpackWindow, type PackedWindow,
} from '../../src/zran/index.js';
import { readRange, recordingLogger, tempDir } from '../storage/fixtures.js';
import { RangeBlobSource, gzipLayer } from '../storage/range-fixtures.js';

const layer = gzipLayer();
const inline = decodeCheckpointTable(layer.checkpoints);
const packed = packWindows(layer.checkpoints);

t.test('windows move into a pack; the table keeps offsets and hashes only', async (t) => {
  t.ok(isPackedTable(packed.table));
  t.ok(packed.table.length < layer.checkpoints.length / 20, `table ${packed.table.length} B, was ${layer.checkpoints.length} B`);
  const d = decodeCheckpointTable(packed.table);
  t.same(d.pack, packed.packRef);
  t.equal(d.points.length, inline.points.length);
  d.points.forEach((p, i) => {
    const q = inline.points[i]!;
    if (p.in !== q.in || p.out !== q.out || p.bits !== q.bits || !p.sha256.equals(q.sha256) || p.window !== undefined) t.fail(`point ${i}`);
    const w = p.packed!;
    if (w.windowLen > 0 && !unpackWindow(packed.pack.subarray(w.offset, w.offset + w.length), w).equals(q.window!)) t.fail(`window ${i}`);
  });
  t.throws(() => packWindows(packed.table), { code: 'CLIP_ZRAN_TABLE_CORRUPT' }, 'a packed table cannot be packed again');
  t.throws(() => decodeCheckpointTable(packed.table.subarray(0, packed.table.length - 1)), { code: 'CLIP_ZRAN_TABLE_CORRUPT' }, 'truncated');
  const outside = Buffer.from(packed.table);
  outside.writeUInt32LE(1, 32); // pack size 1: every window lies outside it
  t.throws(() => decodeCheckpointTable(outside), { code: 'CLIP_ZRAN_TABLE_CORRUPT' }, 'window outside the pack');
  const w = decodeCheckpointTable(packed.table).points[3]!.packed!;
  t.throws(() => unpackWindow(Buffer.alloc(w.length, 7), w), { code: 'CLIP_ZRAN_WINDOW_CORRUPT' });
});

async function packedStore(t: Test, pack: Buffer) {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  blobs.others.set(packed.packRef.digest, pack);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log });
  t.teardown(() => s.close());
  return { s, blobs, records, r: s.open({ ...layer.ref, gzipCheckpoints: packed.table }) };
}

t.test('a cold read fetches its span and just its window; the next span needs no window', async (t) => {
  const { blobs, r } = await packedStore(t, packed.pack);
  const span = 1024 * 1024;
  const off = 7 * span + 1000;
  t.ok((await readRange(r, off, 4096)).equals(layer.tar.subarray(off, off + 4096)));
  t.equal(blobs.ranges.length, 1, 'one range of the layer');
  t.equal(blobs.otherRanges.length, 1, 'one range of the window pack');
  const w = blobs.otherRanges[0]!;
  t.ok(w[2] - w[1] < 32 * 1024, `a single window (${w[2] - w[1]} bytes)`);
  const next = decodeCheckpointTable(packed.table).points[8]!.out + 10;
  t.ok((await readRange(r, next, 4096)).equals(layer.tar.subarray(next, next + 4096)));
  t.equal(blobs.otherRanges.length, 1, 'the following span decoded from the tail of the one before');
  for (const o of [0, 3 * span - 5, 5 * span + 77, layer.tar.length - 9000]) {
    if (!(await readRange(r, o, 9000)).equals(layer.tar.subarray(o, o + 9000))) t.fail(`bytes at ${o}`);
  }
  t.equal(blobs.opens, 0, 'never the whole layer');
  await r.close();
});

t.test('a lying window pack is caught; the read falls back to the whole layer with correct bytes', async (t) => {
  const bad = Buffer.from(packed.pack);
  for (let i = 0; i < bad.length; i += 97) bad[i] = bad[i]! ^ 0x5a;
  const { blobs, records, r } = await packedStore(t, bad);
  const off = 9 * 1024 * 1024 + 5;
  t.ok((await readRange(r, off, 4096)).equals(layer.tar.subarray(off, off + 4096)));
  t.equal(blobs.opens, 1, 'whole-layer download');
  const warn = records.find((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole');
  t.match(String(warn?.['code']), /^CLIP_ZRAN_(WINDOW_CORRUPT|INFLATE|SPAN_DIGEST)$/);
  await r.close();
});

t.test('a packed table with no way to reach its pack is a clear error at decode time', async (t) => {
  const codec = spanCodecFor({ uncompressedSize: layer.tar.length, gzipCheckpoints: packed.table });
  await t.rejects(codec.decode(4, Buffer.alloc(10)), { code: 'CLIP_ZRAN_WINDOW_UNAVAILABLE' });
});

t.test('prepare fetches windows close together in the pack with one request and checks each', async (t) => {
  const d = decodeCheckpointTable(packed.table);
  const w = (i: number): PackedWindow => d.points[i]!.packed!;
  const compressed = (i: number): Buffer => {
    const r = spanCompressedRange(d, i);
    return layer.blob.subarray(r.start, r.end);
  };
  const expected = (i: number): Buffer => layer.tar.subarray(d.points[i]!.out, d.points[i + 1]?.out ?? layer.tar.length);
  const requests: Array<[number, number]> = [];
  const codec = gzipSpanCodec(d, loadZran()!, async (s, e) => {
    requests.push([s, e]);
    return Buffer.from(packed.pack.subarray(s, e));
  });
  await codec.prepare!([4, 2], AbortSignal.timeout(10_000));
  t.same(requests, [[w(2).offset, w(4).offset + w(4).length]], 'spans 2 and 4: one request for their windows and the one between');
  t.ok((await codec.decode(2, compressed(2))).equals(expected(2)) && (await codec.decode(4, compressed(4))).equals(expected(4)), 'both decode');
  t.equal(requests.length, 1, 'with the windows prepare fetched');

  const bad = Buffer.from(packed.pack);
  bad.fill(0x5a, w(3).offset + 8, w(3).offset + 24);
  const lying = gzipSpanCodec(d, loadZran()!, async (s, e) => Buffer.from(bad.subarray(s, e)));
  await lying.prepare!([1, 3], AbortSignal.timeout(10_000)).catch(() => {});
  t.ok((await lying.decode(1, compressed(1))).equals(expected(1)), 'a good window of the request decodes its span');
  await t.rejects(lying.decode(3, compressed(3)), { code: /^CLIP_ZRAN_(WINDOW_CORRUPT|INFLATE)$/ }, 'a bad one is caught');
});
