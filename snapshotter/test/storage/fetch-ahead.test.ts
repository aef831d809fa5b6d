import { join } from 'node:path';
import t, { type Test } from 'tap';
import { FetchAhead, SparseLayer, type RangeFetcher, type SpanShare } from '../../src/storage/index.js';
import { spanCompressedRange, spanEnd, type GzipCheckpointTable } from '../../src/zran/index.js';
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

t.test('the budget: a probe before any measurement, then what the link moves in targetMs; small responses are not measured', async (t) => {
  const fa = new FetchAhead({ maxBytes: 4 << 20, targetMs: 10 });
  t.equal(fa.budget(), 512 * 1024, 'probe budget before the first measurement');
  fa.observe(64 * 1024, 50);
  t.equal(fa.rate, undefined, 'a 64 KiB response says little about the rate: ignored');
  fa.observe(1 << 20, 80);
  t.equal(fa.budget(), Math.floor(((1 << 20) / 80) * 10), '100 Mbit/s-ish: what 10 ms carry');
  for (let i = 0; i < 20; i++) fa.observe(4 << 20, 4);
  t.ok(fa.budget() > 8 << 20, `a fast link converges to a large budget (${fa.budget()})`);
  t.equal(new FetchAhead({ maxBytes: 0, targetMs: 10 }).budget(), 0, 'maxBytes 0 = off');
});

t.test('a read that misses to the registry takes the absent spans after its own in the same request', async (t) => {
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, memoryFetcher(blob, requests), fastLink(cap(3, 4)));
  await readIn(t, layer, 3);
  t.same(requests, [range(3, 7)], 'one request: span 3 and the 4 spans (≈ 1 MiB) after it');
  await layer.ensure(3, 7, signal());
  for (const i of [4, 5, 6, 7]) await readIn(t, layer, i);
  t.equal(requests.length, 1, 'the spans fetched ahead serve later reads without a request');
  t.equal(layer.presentSpans, 5);

  requests.length = 0;
  await readIn(t, layer, 9);
  t.ok(requests.length === 1 && requests[0]![0] === range(9, 9)[0] && requests[0]![1] > range(9, 9)[1], 'an absent span (8) before it is not fetched: only forward');
  requests.length = 0;
  await readIn(t, layer, 1);
  t.same(requests, [range(1, 2)], 'fetching ahead stops at a span already present (3)');
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
  t.ok(requests.length === 1 && requests[0]![0] === range(25, 25)[0], 'the failed spans are absent again and fetched anew');
});
