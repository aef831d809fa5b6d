import { writeFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { SparseLayer, type RangeFetcher } from '../../src/storage/index.js';
import { spanCompressedRange, type GzipCheckpointTable } from '../../src/zran/index.js';
import { COMPRESSORS, buildTable, memoryFetcher, sampleData, zranTempDir } from '../zran/fixtures.js';

const data = sampleData(10 * 1024 * 1024, 7);
const SPAN = 1024 * 1024;



async function openLayer(t: Test, table: GzipCheckpointTable, fetchRange: RangeFetcher, path?: string): Promise<SparseLayer> {
  const layer = await SparseLayer.openGzip({ table, path: path ?? join(await zranTempDir(t), 'layer'), fetchRange });
  t.teardown(() => layer.close().catch(() => {}));
  return layer;
}

const signal = (): AbortSignal => AbortSignal.timeout(30_000);

t.test('byte-exact random reads across span boundaries for every compressor', async (t) => {
  let seed = 12345;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (const [name, compress] of Object.entries(COMPRESSORS)) {
    const blob = compress(data);
    const table = buildTable(blob, SPAN);
    const layer = await openLayer(t, table, memoryFetcher(blob));
    let bad = 0;
    const reads: Array<[number, number]> = table.points.slice(1).map((p) => [p.out - 100, 200]);
    for (let k = 0; k < 60; k++) reads.push([rnd(data.length), 1 + rnd(k % 10 === 0 ? 3 * SPAN : 70000)]);
    reads.push([data.length - 10, 100], [0, 1]);
    for (const [off, len] of reads) {
      const buf = Buffer.alloc(len);
      const n = await layer.read(buf, 0, len, off, signal());
      const want = data.subarray(off, off + len);
      if (n !== want.length || !buf.subarray(0, n).equals(want)) bad++;
    }
    t.equal(bad, 0, `${name}: ${reads.length} reads byte-exact`);
  }
});

t.test('a small read fetches one span; concurrent misses share it; adjacent spans go in one request', async (t) => {
  const blob = COMPRESSORS['gzip -9']!(data);
  const table = buildTable(blob, SPAN);
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, table, memoryFetcher(blob, requests));
  const off = table.points[3]!.out + 10;
  await Promise.all([0, 1, 2, 3].map(() => layer.read(Buffer.alloc(4096), 0, 4096, off, signal())));
  t.same(requests, [[spanCompressedRange(table, 3).start, spanCompressedRange(table, 3).end]]);
  t.ok(layer.fetchedBytes < blob.length / 4, `fetched ${layer.fetchedBytes} of ${blob.length}`);
  requests.length = 0;
  const from = table.points[5]!.out;
  await layer.read(Buffer.alloc(3 * SPAN), 0, 3 * SPAN, from, signal());
  t.equal(requests.length, 1, 'one request for the adjacent missing spans');
  t.equal(requests[0]?.[0], spanCompressedRange(table, 5).start);
  requests.length = 0;
  await layer.read(Buffer.alloc(100), 0, 100, off, signal());
  t.same(requests, [], 'present spans are served from the sparse file');
});

t.test('a corrupt window or a lying registry is a data_corrupt error, never wrong bytes', async (t) => {
  const blob = COMPRESSORS['gzip -1']!(data);
  const table = buildTable(blob, SPAN);
  const points = table.points.map((p, i) => (i === 2 ? { ...p, window: Buffer.from(p.window ?? []).fill(0x41, 0, 32768) } : p));
  const bent = await openLayer(t, { ...table, points }, memoryFetcher(blob));
  await t.rejects(bent.read(Buffer.alloc(10), 0, 10, table.points[2]!.out + 5000, signal()), { name: 'ClipError', kind: 'data_corrupt' });
  const flipped = Buffer.from(blob);
  const r = spanCompressedRange(table, 4);
  flipped[Math.floor((r.start + r.end) / 2)]! ^= 0x10;
  const liar = await openLayer(t, table, memoryFetcher(flipped));
  await t.rejects(liar.read(Buffer.alloc(10), 0, 10, table.points[4]!.out, signal()), { name: 'ClipError', kind: 'data_corrupt' });
  const short = await openLayer(t, table, async (s, e) => blob.subarray(s, e - 1));
  await t.rejects(short.read(Buffer.alloc(10), 0, 10, 0, signal()), { code: 'CLIP_ZRAN_RANGE_LENGTH' });
  // The spans that failed are not recorded: a good registry serves them afterwards.
  t.equal(liar.presentSpans, 0);
});

t.test('restart: spans on disk are reused after a hash check; a damaged one is refetched', async (t) => {
  const blob = COMPRESSORS.pigz!(data);
  const table = buildTable(blob, SPAN);
  const path = join(await zranTempDir(t), 'layer');
  const first = await SparseLayer.openGzip({ table, path, fetchRange: memoryFetcher(blob) });
  await first.read(Buffer.alloc(2 * SPAN), 0, 2 * SPAN, table.points[1]!.out, signal());
  await first.close();
  const requests: Array<[number, number]> = [];
  const again = await openLayer(t, table, memoryFetcher(blob, requests), path);
  t.ok(again.presentSpans >= 2);
  const buf = Buffer.alloc(1000);
  await again.read(buf, 0, 1000, table.points[1]!.out, signal());
  t.same(requests, []);
  t.ok(buf.equals(data.subarray(table.points[1]!.out, table.points[1]!.out + 1000)));
  await again.close();
  const fh = await open(path, 'r+');
  await fh.write(Buffer.from('XXXX'), 0, 4, table.points[2]!.out + 7);
  await fh.close();
  const third = await openLayer(t, table, memoryFetcher(blob, requests), path);
  await third.read(buf, 0, 1000, table.points[2]!.out, signal());
  t.equal(requests.length, 1, 'damaged span refetched');
  t.ok(buf.equals(data.subarray(table.points[2]!.out, table.points[2]!.out + 1000)));
  await writeFile(`${path}.spans`, Buffer.alloc(3));
  const fourth = await openLayer(t, table, memoryFetcher(blob), path);
  t.equal(fourth.presentSpans, 0, 'a span record of the wrong length is ignored');
});

t.test('tiny spans on a multi-member stream: checkpoints at member starts, whole layer byte-exact', async (t) => {
  const small = data.subarray(0, 3 * 1024 * 1024);
  const blob = COMPRESSORS['multi-member']!(small);
  const table = buildTable(blob, 1, 4096);
  t.ok(table.points.length > 20, `${table.points.length} points`);
  t.ok(table.points.some((p, i) => i > 0 && p.window?.length === 0), 'a checkpoint at the start of a later member');
  const layer = await openLayer(t, table, memoryFetcher(blob));
  const buf = Buffer.alloc(small.length);
  t.equal(await layer.read(buf, 0, small.length, 0, signal()), small.length);
  t.ok(buf.equals(small));
});

t.test('a sequential reader gets the spans ahead fetched in growing windows; random reads fetch only their spans', async (t) => {
  const blob = COMPRESSORS['gzip -9']!(data);
  const table = buildTable(blob, 64 * 1024);
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, table, memoryFetcher(blob, requests));
  const chunk = 128 * 1024;
  let bad = 0;
  for (let off = 0; off < data.length; off += chunk) {
    const buf = Buffer.alloc(chunk);
    const n = await layer.read(buf, 0, chunk, off, signal());
    if (!buf.subarray(0, n).equals(data.subarray(off, off + chunk))) bad++;
  }
  t.equal(bad, 0, 'every sequential read byte-exact');
  const reads = data.length / chunk;
  t.ok(requests.length <= reads / 4, `${requests.length} Range requests for ${reads} sequential reads over ${table.points.length} spans`);
  const sizes = requests.map(([s, e]) => e - s);
  t.ok(Math.max(...sizes) >= 8 * sizes[0]!, `windows grow (request sizes ${sizes.join(', ')})`);

  requests.length = 0;
  const cold = await openLayer(t, table, memoryFetcher(blob, requests), undefined);
  const spans = [40, 3, 60, 17];
  for (const i of spans) {
    const off = table.points[i]!.out + 5;
    const buf = Buffer.alloc(100);
    await cold.read(buf, 0, 100, off, signal());
    if (!buf.equals(data.subarray(off, off + 100))) bad++;
  }
  t.equal(bad, 0, 'random reads byte-exact');
  t.equal(requests.length, spans.length, 'one request per random read, nothing read ahead');
  t.equal(cold.presentSpans, spans.length, 'only the spans read are present');
});

t.test('diskRange: a file range only where every span is verified, none past the end or after close', async (t) => {
  const { readSync } = await import('node:fs');
  const blob = COMPRESSORS['gzip -9']!(data);
  const table = buildTable(blob, SPAN);
  const requests: Array<[number, number]> = [];
  const layer = await openLayer(t, table, memoryFetcher(blob, requests));
  const s3 = table.points[3]!.out;
  t.equal(layer.diskRange(s3 + 10, 4096), undefined, 'span absent: no range');
  t.same(requests, [], 'and nothing fetched for asking');
  await layer.read(Buffer.alloc(100), 0, 100, s3 + 10, signal());
  const r = layer.diskRange(s3 + 10, 4096);
  t.ok(r, 'span verified: a range');
  const got = Buffer.alloc(4096);
  t.equal(readSync(r!.fd, got, 0, 4096, r!.position), 4096);
  t.ok(got.equals(data.subarray(s3 + 10, s3 + 10 + 4096)), 'the range holds the layer bytes at that offset');
  t.equal(layer.diskRange(table.points[4]!.out - 10, 20), undefined, 'a range crossing into an absent span: none');
  t.equal(layer.diskRange(data.length - 10, 20), undefined, 'not past the end of the layer');
  t.equal(layer.diskRange(s3, 0), undefined, 'not for nothing');
  await layer.close();
  t.equal(layer.diskRange(s3 + 10, 4096), undefined, 'closed: none');
});
