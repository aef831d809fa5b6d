import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SparseLayer, type RangeFetcher } from '../../src/storage/index.js';
import { zstdSpanCodec, zstdSpanEnd, type ZstdFrameTable } from '../../src/zran/index.js';
import { memoryFetcher, sampleData, zranTempDir } from '../zran/fixtures.js';
import { MULTI_FRAME, buildZstd, framed, zstd } from '../zran/zstd-fixtures.js';

const data = sampleData(10 * 1024 * 1024, 5);
const SPAN = 1024 * 1024;
const signal = (): AbortSignal => AbortSignal.timeout(30_000);

/** Incompressible bytes: zstd stores them as raw blocks, so equal sizes compress to equal lengths. */
function noise(n: number): Buffer {
  const out = Buffer.alloc(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}



async function openLayer(t: Test, table: ZstdFrameTable, fetchRange: RangeFetcher): Promise<SparseLayer> {
  const layer = await SparseLayer.open({ codec: zstdSpanCodec(table), path: join(await zranTempDir(t), 'layer'), fetchRange });
  t.teardown(() => layer.close().catch(() => {}));
  return layer;
}

function tableOf(blob: Buffer): ZstdFrameTable {
  const { table } = buildZstd(blob, { spanBytes: SPAN, minLayerBytes: 0 });
  if (!table) throw new Error('no table');
  return table;
}

t.test('byte-exact random reads across span boundaries for every multi-frame encoder', async (t) => {
  let seed = 4242;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (const [name, compress] of Object.entries(MULTI_FRAME)) {
    const blob = compress(data);
    const table = tableOf(blob);
    const layer = await openLayer(t, table, memoryFetcher(blob));
    const reads: Array<[number, number]> = table.spans.slice(1).map((s) => [s.out - 100, 200]);
    for (let k = 0; k < 40; k++) reads.push([rnd(data.length), 1 + rnd(k % 8 === 0 ? 3 * SPAN : 70000)]);
    reads.push([data.length - 10, 100], [0, 1]);
    let bad = 0;
    for (const [off, len] of reads) {
      const buf = Buffer.alloc(len);
      const n = await layer.read(buf, 0, len, off, signal());
      const want = data.subarray(off, off + len);
      if (n !== want.length || !buf.subarray(0, n).equals(want)) bad++;
    }
    t.equal(bad, 0, `${name}: ${reads.length} reads over ${table.spans.length} spans byte-exact`);
  }
});

t.test('a small read fetches only its span: one request for exactly its frames', async (t) => {
  const blob = MULTI_FRAME['one frame per 96 KiB']!(data);
  const table = tableOf(blob);
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, table, memoryFetcher(blob, requests));
  const s = table.spans[4]!;
  const buf = Buffer.alloc(4096);
  await Promise.all([0, 1, 2].map(() => layer.read(buf, 0, 4096, s.out + 10, signal())));
  t.same(requests, [[s.in, s.inEnd]], 'concurrent misses share one fetch');
  t.ok(buf.equals(data.subarray(s.out + 10, s.out + 4106)));
  t.ok(layer.fetchedBytes < blob.length / 5, `fetched ${layer.fetchedBytes} of ${blob.length}`);
  requests.length = 0;
  await layer.read(Buffer.alloc(2 * SPAN), 0, 2 * SPAN, table.spans[6]!.out, signal());
  t.equal(requests.length, 1, 'adjacent missing spans in one request');
  t.equal(requests[0]?.[0], table.spans[6]!.in);
});

t.test('a lying registry or a lying table is data_corrupt, never wrong bytes', async (t) => {
  const blob = MULTI_FRAME['pzstd -1']!(data);
  const table = tableOf(blob);
  const s = table.spans[1]!;
  const off = s.out + 1000;
  const read = (l: SparseLayer) => l.read(Buffer.alloc(10), 0, 10, off, signal());
  // A flipped byte inside a block: it decodes to other bytes (sha256 mismatch) or not at all.
  const flipped = Buffer.from(blob);
  flipped[Math.floor((s.in + s.inEnd) / 2)]! ^= 0x10;
  await t.rejects(read(await openLayer(t, table, memoryFetcher(flipped))), { name: 'ClipError', kind: 'data_corrupt' }, 'flipped byte');
  // Valid zstd of other bytes, the right length (incompressible frames of equal size): only the digest can tell.
  const noisy = noise(4 * SPAN);
  const noisyBlob = framed(noisy, SPAN, () => ['-1']);
  const nt = tableOf(noisyBlob);
  const [n1, n2] = [nt.spans[1]!, nt.spans[2]!];
  t.equal(n1.inEnd - n1.in, n2.inEnd - n2.in, 'two spans of equal compressed length');
  const swap: RangeFetcher = async (a, b) => (a === n1.in ? noisyBlob.subarray(n2.in, n2.inEnd) : noisyBlob.subarray(a, b));
  await t.rejects(openLayer(t, nt, swap).then((l) => l.read(Buffer.alloc(10), 0, 10, n1.out, signal())), { code: 'CLIP_ZRAN_SPAN_DIGEST' }, 'another span served');
  // Right bytes, table digest wrong.
  const spans = table.spans.map((x, i) => (i === 1 ? { ...x, sha256: Buffer.alloc(32, 1) } : x));
  await t.rejects(read(await openLayer(t, { ...table, spans }, memoryFetcher(blob))), { code: 'CLIP_ZRAN_SPAN_DIGEST' }, 'wrong digest in the table');
  // A table whose span claims more frames than the bytes hold.
  const more = table.spans.map((x, i) => (i === 1 ? { ...x, frames: x.frames + 1 } : x));
  await t.rejects(read(await openLayer(t, { ...table, spans: more, frameCount: table.frameCount + 1 }, memoryFetcher(blob))), { code: 'CLIP_ZRAN_ZSTD_DECODE' }, 'frame count');
  // A short answer.
  await t.rejects(read(await openLayer(t, table, async (a, b) => blob.subarray(a, b - 1))), { code: 'CLIP_ZRAN_RANGE_LENGTH' }, 'a short answer');
  // A frame header claiming a huge content size is refused before the decoder allocates it.
  const sized = Buffer.concat([0, 1, 2].map((i) => zstd(data.subarray(i * 500_000, (i + 1) * 500_000), ['-3', '--stream-size=500000'])));
  const st = buildZstd(sized, { spanBytes: 400_000, minLayerBytes: 0 }).table!;
  const f1 = st.spans[1]!;
  const desc = sized[f1.in + 4]!;
  t.equal(desc >> 6, 2, 'a 4-byte frame content size');
  const inflated = Buffer.from(sized);
  inflated.writeUInt32LE(0xfffffff0, f1.in + 5 + ((desc & 0x20) !== 0 ? 0 : 1));
  await t.rejects(openLayer(t, st, memoryFetcher(inflated)).then((l) => l.read(Buffer.alloc(10), 0, 10, f1.out, signal())), { code: 'CLIP_ZRAN_ZSTD_DECODE', message: /claims 4294967280 bytes/ }, 'a content size beyond the span');
  const layer = await openLayer(t, table, memoryFetcher(blob));
  const buf = Buffer.alloc(10);
  await layer.read(buf, 0, 10, off, signal());
  t.ok(buf.equals(data.subarray(off, off + 10)), 'the honest registry serves the same span');
  t.equal(zstdSpanEnd(table, table.spans.length - 1), data.length);
});
