import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FetchAhead, SparseLayer, type RangeFetcher, type SpanShare } from '../../src/storage/index.js';
import { WINDOW_MERGE_GAP_BYTES } from '../../src/zran/span-codec.js';
import {
  decodeCheckpointTable, encodeCheckpointTable, gzipSpanCodec, loadZran, packWindows, spanCompressedRange, spanEnd, type GzipCheckpointTable,
} from '../../src/zran/index.js';
import { COMPRESSORS, buildTable, memoryFetcher, sampleData, zranTempDir } from '../zran/fixtures.js';

const SPAN = 256 * 1024;
const data = sampleData(10 * 1024 * 1024, 11);
const blob = COMPRESSORS['gzip -9']!(data);
const table = buildTable(blob, SPAN);
const signal = (): AbortSignal => AbortSignal.timeout(30_000);

/** A fetch-ahead whose link looks fast (1 GB/s): the uncompressed cap decides. */
function fastLink(maxBytes: number): FetchAhead {
  const fa = new FetchAhead({ maxBytes, targetMs: 10 });
  fa.observe(1 << 30, 1_000);
  return fa;
}

async function openLayer(t: Test, fetchRange: RangeFetcher, fetchAhead: FetchAhead | undefined, share?: SpanShare): Promise<SparseLayer> {
  const layer = await SparseLayer.openGzip({ table: table as GzipCheckpointTable, path: join(await zranTempDir(t), 'layer'), fetchRange, fetchAhead, share });
  t.teardown(() => layer.close().catch(() => {}));
  return layer;
}

/** Read 100 bytes inside span `i`; checks them against the layer. */
async function readIn(t: Test, layer: SparseLayer, i: number): Promise<void> {
  const off = table.points[i]!.out + 7;
  const buf = Buffer.alloc(100);
  await layer.read(buf, 0, 100, off, signal());
  t.ok(buf.equals(data.subarray(off, off + 100)), `span ${i} byte-exact`);
}

const range = (first: number, last: number): [number, number] => [spanCompressedRange(table, first).start, spanCompressedRange(table, last).end];
/** A cap of exactly the `k` spans after span `i` (spans end at the first deflate block past 256 KiB, so they differ in size). */
const cap = (i: number, k: number): number => spanEnd(table, i + k) - spanEnd(table, i);

t.test('the budget: a probe before any measurement, then what the link moves in targetMs', async (t) => {
  const fa = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  t.equal(fa.budget(), 512 * 1024, 'probe budget before the first measurement');
  fa.observe(64 * 1024, 50);
  t.equal(fa.rate, undefined, 'a 64 KiB response says little about the rate');
  t.equal(fa.budget(), 512 * 1024, 'still the probe budget');
  fa.observe(1 << 20, 80);
  t.equal(fa.budget(), Math.floor(((1 << 20) / (80 - 50)) * 10), 'the 1 MiB response\'s 80 ms less the 50 ms overhead: what 10 ms carry at that rate');
  const noOverhead = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  noOverhead.observe(1 << 20, 80);
  t.equal(noOverhead.budget(), Math.floor(((1 << 20) / 80) * 10), 'no small response seen yet: the whole time counts as transfer');
  const noisy = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  noisy.observe(16 * 1024, 100);
  noisy.observe(1 << 20, 80);
  t.equal(noisy.budget(), Math.floor(((1 << 20) / 20) * 10), 'a response faster than the overhead estimate: its transfer is taken as a quarter of its time');
  for (let i = 0; i < 20; i++) fa.observe(4 << 20, 4);
  t.ok(fa.budget() > 8 << 20, `a fast link converges to a large budget (${fa.budget()})`);
  t.equal(new FetchAhead({ maxBytes: 0, targetMs: 10 }).budget(), 0, 'maxBytes 0 = off');
});

t.test('small responses measure a request\'s own overhead, and the rate is what large ones took beyond it', async (t) => {
  // docker-registry on loopback: ≈ 7 ms a request whatever its size, 1 GB/s once it sends.
  const overheadMs = 7;
  const took = (bytes: number): number => overheadMs + bytes / (1 << 20);
  const naive = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  const fa = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  for (let i = 0; i < 30; i++) {
    fa.observe(16 * 1024, took(16 * 1024));
    for (const f of [naive, fa]) f.observe(400 * 1024, took(400 * 1024));
  }
  t.equal(naive.overheadMs, undefined, 'without small responses there is no overhead estimate');
  t.ok(Math.abs((fa.overheadMs ?? 0) - took(16 * 1024)) < 0.01, `overhead ≈ a window's time (${fa.overheadMs?.toFixed(2)} ms)`);
  t.ok(naive.budget() < 600 * 1024, `overhead counted as transfer: the budget stays near one such response (${naive.budget()})`);
  t.ok(fa.budget() >= 2000 * 1024, `overhead set apart: the budget is ≥ 5 such responses (${fa.budget()})`);

  const slow = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  // 100 Mbit/s with a 2 ms round trip: a 16 KiB window takes 3.3 ms, 400 KiB 34.8 ms.
  for (let i = 0; i < 30; i++) {
    slow.observe(16 * 1024, 2 + (16 * 1024) / 12_500);
    slow.observe(400 * 1024, 2 + (400 * 1024) / 12_500);
  }
  t.ok(Math.abs(slow.budget() - 125_000) < 12_500, `a slow link keeps a small budget: what 10 ms carry (${slow.budget()})`);
});

t.test('a read that misses to the registry takes the absent spans after its own in the same request', async (t) => {
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, memoryFetcher(blob, requests), fastLink(cap(3, 4)));
  await layer.ensure(2, 2, signal());
  requests.length = 0;
  await readIn(t, layer, 3);
  t.same(requests, [range(3, 7)], 'one request: span 3 and the 4 spans (≈ 1 MiB) after it');
  await layer.ensure(3, 7, signal());
  for (const i of [4, 5, 6, 7]) await readIn(t, layer, i);
  t.equal(requests.length, 1, 'the spans fetched ahead serve later reads without a request');
  t.equal(layer.presentSpans, 6, 'span 2 and the five fetched');

  requests.length = 0;
  await readIn(t, layer, 1);
  t.same(requests, [range(0, 1)], 'fetching ahead stops at a span already present (2); span 0 before it, in the same block, comes along');
});

/** Spans whose uncompressed start lies in the same `block`-aligned stretch as span `i`'s. */
const blockOf = (i: number, block: number): number[] => {
  const start = Math.floor(table.points[i]!.out / block) * block;
  return table.points.flatMap((p, k) => (p.out >= start && p.out < start + block ? [k] : []));
};

t.test('a miss also takes the absent spans before it, back to the start of its fetch-ahead block', async (t) => {
  const block = 2 << 20;
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, memoryFetcher(blob, requests), fastLink(block));
  const b1 = blockOf(18, block);
  t.ok(b1[0]! <= 16, `span 18's block starts at span ${b1[0]}`);
  await readIn(t, layer, 18);
  t.equal(requests.length, 1, 'one request');
  t.equal(requests[0]![0], range(b1[0]!, b1[0]!)[0], 'it starts at the block\'s first span');
  t.ok(requests[0]![1] > range(18, 18)[1], 'and goes on past the read');
  await layer.ensure(b1[0]!, 18, signal());
  for (let i = b1[0]!; i < 18; i++) await readIn(t, layer, i);
  t.equal(requests.length, 1, 'the spans before the read in its block need no request');

  requests.length = 0;
  const b0 = blockOf(b1[0]! - 1, block);
  const mid = b0[Math.floor(b0.length / 2)]!;
  await layer.ensure(mid, mid, signal());
  requests.length = 0;
  await readIn(t, layer, mid + 2);
  t.same(requests[0]?.[0], range(mid + 1, mid + 1)[0], 'going back stops at a span already present');
  t.equal(requests[0]?.[1], range(b1[0]! - 1, b1[0]! - 1)[1], 'and going ahead at the next present one (the next block\'s first)');

  const slow = new FetchAhead({ maxBytes: block, targetMs: 10 });
  slow.observe(1 << 20, 10_000);
  const slowRequests: Array<[number, number]> = [];
  const c = await openLayer(t, memoryFetcher(blob, slowRequests), slow);
  await readIn(t, c, 20);
  t.same(slowRequests, [range(20, 20)], 'a link moving 1 kB in 10 ms: nothing before or after');
  const none: Array<[number, number]> = [];
  const d = await openLayer(t, memoryFetcher(blob, none), undefined);
  await readIn(t, d, 20);
  t.same(none, [range(20, 20)], 'no fetch-ahead: only the read\'s own span');
});

t.test('the read decodes its own span first: bad bytes of a span before it fail only that span, and never reach the file', async (t) => {
  const block = 2 << 20;
  const b1 = blockOf(18, block);
  const bad = b1[1]!;
  const corrupt = Buffer.from(blob);
  const r = spanCompressedRange(table, bad);
  for (let i = r.start + 10; i < r.end - 10; i += 7) corrupt[i] = corrupt[i]! ^ 0x33;
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, memoryFetcher(corrupt, requests), fastLink(block));
  await readIn(t, layer, 18);
  t.equal(requests[0]![0], range(b1[0]!, b1[0]!)[0], 'the request took the spans before the read');
  await t.rejects(layer.read(Buffer.alloc(100), 0, 100, table.points[bad]!.out, signal()), { code: /^CLIP_ZRAN_(INFLATE|SPAN_DIGEST)$/ }, `span ${bad} does not verify`);
  t.notOk(layer.presentSpans > 0 && (await layer.readPresent(Buffer.alloc(10), 0, 10, table.points[bad]!.out)) !== undefined, 'the bad span is not on disk');
  await readIn(t, layer, b1[0]!);
});


t.test('fetching ahead is only for on-demand misses: not for prefetch or completion, not from the share, not on a slow link', async (t) => {
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, memoryFetcher(blob, requests), fastLink(cap(20, 4)));
  await layer.ensure(20, 20, signal());
  t.same(requests, [range(20, 20)], 'ensure (prefetch) fetches exactly its spans');

  // A node reading what another node shared: served from the share, so no request at all.
  const shared = new Map<number, Buffer>([[5, Buffer.from(data.subarray(table.points[5]!.out, table.points[6]!.out))]]);
  const share: SpanShare = { get: async (i) => shared.get(i), put: () => {} };
  const fromShare: Array<[number, number]> = [];
  const b = await openLayer(t, memoryFetcher(blob, fromShare), fastLink(cap(6, 4)), share);
  await readIn(t, b, 5);
  t.same(fromShare, [], 'a span found in the share extends nothing');
  await readIn(t, b, 6);
  t.same(fromShare, [range(6, 10)], 'a span the share lacks goes to the registry with the spans after it');

  const slow = new FetchAhead({ maxBytes: cap(12, 4), targetMs: 10 });
  slow.observe(1 << 20, 10_000);
  const slowRequests: Array<[number, number]> = [];
  const c = await openLayer(t, memoryFetcher(blob, slowRequests), slow);
  await readIn(t, c, 12);
  t.same(slowRequests, [range(12, 12)], 'a link moving 1 kB in 10 ms: nothing fetched ahead');
});

t.test('readers of the spans being fetched ahead wait for that fetch; a failed fetch fails them, the next read refetches', async (t) => {
  const requests: Array<[number, number]> = [];
  let fail = false;
  const fetcher = memoryFetcher(blob, requests);
  const layer = await openLayer(t, async (s, e, sig) => {
    if (fail) {
      requests.push([s, e]);
      throw new Error('registry down');
    }
    return fetcher(s, e, sig);
  }, fastLink(cap(20, 2)));
  await Promise.all([readIn(t, layer, 20), readIn(t, layer, 21), readIn(t, layer, 22)]);
  t.same(requests, [range(20, 22)], 'three concurrent readers, one request');

  requests.length = 0;
  fail = true;
  const first = layer.read(Buffer.alloc(10), 0, 10, table.points[24]!.out, signal());
  const joined = layer.read(Buffer.alloc(10), 0, 10, table.points[25]!.out, signal());
  await t.rejects(first, /registry down/);
  await t.rejects(joined, /registry down/, 'a reader joining a span fetched ahead gets the fetch\'s failure');
  t.ok(requests.length === 1 && requests[0]![0] === range(24, 24)[0] && requests[0]![1] >= range(24, 25)[1], 'one request for span 24 and those after it');
  fail = false;
  requests.length = 0;
  await readIn(t, layer, 25);
  t.ok(requests.length === 1 && requests[0]![0] === range(24, 24)[0] && requests[0]![1] >= range(25, 25)[1], 'the failed spans are absent again and fetched anew (24 before the read, in its block, with it)');
});

t.test('with windows in a pack, the spans before the read and the read\'s own span get their windows in one pack request', async (t) => {
  const block = 2 << 20;
  const packed = packWindows(encodeCheckpointTable(table));
  const ptable = decodeCheckpointTable(packed.table);
  const packRequests: Array<[number, number]> = [];
  const codec = gzipSpanCodec(ptable, loadZran()!, memoryFetcher(packed.pack, packRequests));
  const requests: Array<[number, number]> = [];
  const layer = await SparseLayer.open({ codec, path: join(await zranTempDir(t), 'layer'), fetchRange: memoryFetcher(blob, requests), fetchAhead: fastLink(block) });
  t.teardown(() => layer.close().catch(() => {}));
  const b1 = blockOf(18, block);
  await readIn(t, layer, 18);
  t.equal(requests.length, 1, 'one request of the layer');
  t.equal(requests[0]![0], range(b1[0]!, b1[0]!)[0], 'from the block\'s first span');
  const w = (i: number): { offset: number; length: number } => ptable.points[i]!.packed!;
  t.same(packRequests, [[w(b1[0]!).offset, w(18).offset + w(18).length]], `one pack request: the windows of spans ${b1[0]} to 18`);
  await layer.ensure(b1[0]!, 18, signal());
  for (const i of b1) await readIn(t, layer, i);
  t.equal(requests.length + packRequests.length, 2, 'the rest of the block needs no request: the spans before decode one from the other');

  const last = ptable.points.length - 1;
  t.ok(w(last).offset - (w(1).offset + w(1).length) > WINDOW_MERGE_GAP_BYTES, `spans 1 and ${last}: windows over ${WINDOW_MERGE_GAP_BYTES} bytes apart in the pack`);
  packRequests.length = 0;
  await codec.prepare!([1, last], signal());
  t.same(packRequests, [[w(1).offset, w(1).offset + w(1).length], [w(last).offset, w(last).offset + w(last).length]], 'windows far apart: a request each');
});
