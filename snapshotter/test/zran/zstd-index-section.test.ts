import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import { compressSync, uncompressSync } from 'lz4-napi';
import t, { type Test } from 'tap';
import { buildIndex, decodeIndex, encodeIndex } from '../../src/clip/index.js';
import { SparseLayer } from '../../src/storage/index.js';
import { decodeZstdFrameTable, loadZran, randomAccessObserver, zstdSpanCodec } from '../../src/zran/index.js';
import { expectFilesExact, makeGnuTar } from './fixtures.js';
import { MULTI_FRAME, zstd } from './zstd-fixtures.js';

const stream = (buf: Buffer, chunk = 65536): Readable =>
  Readable.from((function* () { for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk); })());
const observer = () => randomAccessObserver({ gzip: true, zstd: true, spanBytes: 1024 * 1024, minLayerBytes: 0 });

const makeTar = (t: Test) => makeGnuTar(t, 'last.txt', 30);

t.test('buildIndex stores a zstd frame section for a pzstd layer; file bytes read through it are exact', async (t) => {
  const { tar, files, dir } = await makeTar(t);
  const blob = MULTI_FRAME['pzstd -1']!(tar);
  const idx = await buildIndex(stream(blob), { compressedObserver: observer() });
  const plain = await buildIndex(stream(blob));
  t.equal(idx.meta.compression, 'zstd', 'a stream that opens with a skippable frame is zstd');
  t.equal(idx.gzipCheckpoints, undefined);
  t.equal(plain.zstdFrames, undefined);
  t.same(idx.meta, plain.meta, 'the observer decoding the layer changes nothing in the index');
  t.same(idx.entries, plain.entries);
  const reader = decodeIndex(encodeIndex(idx));
  t.equal(decodeIndex(encodeIndex(plain)).zstdFrames, undefined);
  const table = decodeZstdFrameTable(reader.zstdFrames!);
  t.equal(table.uncompressedSize, tar.length);
  t.equal(table.compressedSize, blob.length);
  t.ok(table.spans.length >= 3, `${table.spans.length} spans`);
  const layer = await SparseLayer.open({ codec: zstdSpanCodec(table), path: join(dir, 'sparse'), fetchRange: async (s, e) => blob.subarray(s, e) });
  t.teardown(() => layer.close());
  await expectFilesExact(t, reader, layer, files);
});

t.test('single-frame zstd, gzip and plain layers get no zstd section', async (t) => {
  const { tar } = await makeTar(t);
  const single = await buildIndex(stream(zstd(tar)), { compressedObserver: observer() });
  t.equal(single.zstdFrames, undefined, 'single frame');
  const plain = await buildIndex(stream(tar), { compressedObserver: observer() });
  t.equal(plain.zstdFrames, undefined, 'plain');
  t.equal(plain.gzipCheckpoints, undefined);
  const gz = await buildIndex(stream(execFileSync('gzip', ['-1', '-c', '-n'], { input: tar, maxBuffer: 1 << 30 })), { compressedObserver: observer() });
  t.equal(gz.zstdFrames, undefined, 'gzip');
  t.equal(gz.gzipCheckpoints !== undefined, loadZran() !== undefined, 'gzip still gets checkpoints from the combined observer');
  const zstdOnly = randomAccessObserver({ gzip: false, zstd: true, spanBytes: 1024 * 1024, minLayerBytes: 0 });
  t.equal((await buildIndex(stream(MULTI_FRAME['pzstd -1']!(tar)), { compressedObserver: zstdOnly })).zstdFrames !== undefined, true, 'zstd alone');
  t.equal(randomAccessObserver({ gzip: false, zstd: false }), undefined, 'none enabled: no observer');
});

t.test('a damaged zstd layer fails the build with the same error with or without the observer', async (t) => {
  const { tar } = await makeTar(t);
  const blob = MULTI_FRAME['one frame per 96 KiB']!(tar);
  const cut = blob.subarray(0, blob.length - 7);
  const codes: unknown[] = [];
  for (const opts of [{}, { compressedObserver: observer() }]) {
    const err = await buildIndex(stream(cut), opts).then(() => undefined, (e: unknown) => e);
    codes.push((err as { code?: string } | undefined)?.code);
  }
  t.same(codes, ['CLIP_LAYER_DECOMPRESS_FAILED', 'CLIP_LAYER_DECOMPRESS_FAILED']);
});

t.test('a reader ignores sections it does not know (how older readers see zstdFrames)', async (t) => {
  const { tar } = await makeTar(t);
  const idx = await buildIndex(stream(MULTI_FRAME['pzstd -1']!(tar)), { compressedObserver: observer() });
  const enc = encodeIndex(idx);
  const withExtra = addSection(enc, 99, Buffer.from('a section from the future'));
  const a = decodeIndex(enc);
  const b = decodeIndex(withExtra);
  t.equal(b.entryCount, a.entryCount);
  t.same(b.meta, a.meta);
  t.ok(b.zstdFrames?.equals(a.zstdFrames!), 'known sections still read');
});

/** Re-encode an index with one more section appended (header checksums recomputed). */
function addSection(enc: Buffer, id: number, body: Buffer): Buffer {
  const payload = uncompressSync(enc.subarray(32));
  const count = payload.readUInt32LE(0);
  const rows = Buffer.alloc(4 + (count + 1) * 12);
  rows.writeUInt32LE(count + 1, 0);
  for (let i = 0; i < count; i++) {
    rows.writeUInt32LE(payload.readUInt32LE(4 + i * 12), 4 + i * 12);
    rows.writeUInt32LE(payload.readUInt32LE(8 + i * 12) + 12, 8 + i * 12);
    rows.writeUInt32LE(payload.readUInt32LE(12 + i * 12), 12 + i * 12);
  }
  rows.writeUInt32LE(id, 4 + count * 12);
  rows.writeUInt32LE(payload.length + 12, 8 + count * 12);
  rows.writeUInt32LE(body.length, 12 + count * 12);
  const next = Buffer.concat([rows, payload.subarray(4 + count * 12), body]);
  const compressed = compressSync(next);
  const header = Buffer.from(enc.subarray(0, 32));
  header.writeUInt32LE(next.length, 12);
  header.writeUInt32LE(compressed.length, 16);
  header.writeUInt32LE(crc32(next), 20);
  header.writeUInt32LE(crc32(compressed), 24);
  return Buffer.concat([header, compressed]);
}
