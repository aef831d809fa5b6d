/**
 * Issue 12, deliver 7: a span of a layer's random-access table (from its untrusted index) is
 * bounded by `[index] max_span_bytes` / `max_span_compressed_bytes`; a table over a bound is refused
 * with its code and the layer is read whole.
 */
import { join } from 'node:path';
import t from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore } from '../../src/storage/index.js';
import { DEFAULT_SPAN_BOUNDS, encodeZstdFrameTable, spanCodecFor } from '../../src/zran/index.js';
import { readRange, recordingLogger, tempDir } from '../storage/fixtures.js';
import { RangeBlobSource, gzipLayer } from '../storage/range-fixtures.js';

const layer = gzipLayer(); // 12 MiB, spans of about 1 MiB

t.test('gzip tables: spans within the bounds pass, one over either bound is refused and named', async (t) => {
  const ref = { uncompressedSize: layer.ref.uncompressedSize, gzipCheckpoints: layer.checkpoints };
  t.equal(spanCodecFor(ref).name, 'gzip', 'the default bounds (64 MiB) take a normal table');
  t.throws(() => spanCodecFor(ref, undefined, { ...DEFAULT_SPAN_BOUNDS, maxSpanBytes: 512 * 1024 }), {
    kind: 'invalid_argument', code: 'CLIP_ZRAN_SPAN_TOO_LARGE', message: /^gzip table: span 0 decodes to \d+ bytes, over \[index\] max_span_bytes \(524288\)/,
  });
  t.throws(() => spanCodecFor(ref, undefined, { ...DEFAULT_SPAN_BOUNDS, maxSpanCompressedBytes: 64 * 1024 }), {
    code: 'CLIP_ZRAN_SPAN_TOO_LARGE', message: /span 0 is \d+ compressed bytes, over \[index\] max_span_compressed_bytes \(65536\)/,
  });
});

t.test('zstd tables: a table whose last span claims most of a 2 GiB layer is refused before any fetch', async (t) => {
  const size = 2 * 1024 * 1024 * 1024 - 1;
  const span = (i: number, out: number) => ({ in: i * 100, inEnd: i * 100 + 100, out, frames: 1, sha256: Buffer.alloc(32) });
  const frames = encodeZstdFrameTable({ spanBytes: 1 << 20, frameCount: 2, compressedSize: 200, uncompressedSize: size, spans: [span(0, 0), span(1, 1 << 20)] });
  t.throws(() => spanCodecFor({ uncompressedSize: size, zstdFrames: frames }), { code: /^CLIP_ZRAN_/ }, 'refused (here by the hard 1 GiB table cap or the bound)');
  const small = encodeZstdFrameTable({ spanBytes: 1 << 20, frameCount: 2, compressedSize: 200, uncompressedSize: 80 << 20, spans: [span(0, 0), span(1, 1 << 20)] });
  t.throws(() => spanCodecFor({ uncompressedSize: 80 << 20, zstdFrames: small }), { code: 'CLIP_ZRAN_SPAN_TOO_LARGE', message: /^zstd table: span 1 decodes to 82837504 bytes/ }, 'a 79 MiB span over the 64 MiB default');
  t.equal(spanCodecFor({ uncompressedSize: 80 << 20, zstdFrames: small }, undefined, { maxSpanBytes: 128 << 20, maxSpanCompressedBytes: 1 << 20 }).name, 'zstd', 'a larger bound takes it');
});

t.test('the store: a layer whose table is over the bound is read whole, byte-exact, with the code logged', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log, rangeCompletionBytesPerSec: 0,
    spanBounds: { maxSpanBytes: 512 * 1024, maxSpanCompressedBytes: 64 << 20 },
  });
  t.teardown(() => s.close());
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  const off = layer.tar.length - 3 * 1024 * 1024;
  t.ok((await readRange(r, off, 65536)).equals(layer.tar.subarray(off, off + 65536)), 'the true bytes');
  t.equal(blobs.ranges.length, 0, 'no range request');
  t.equal(blobs.opens, 1, 'one whole-layer download');
  t.ok(records.some((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole' && rec['code'] === 'CLIP_ZRAN_SPAN_TOO_LARGE'), 'logged with its code');
  await r.close();
});
