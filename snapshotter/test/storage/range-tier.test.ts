import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, layerStateKey, type LayerRef, type LayerStoreOptions } from '../../src/storage/index.js';
import { existsSync } from 'node:fs';
import { ManualClock, RecordingContentCache, readRange, recordingLogger, tempDir } from './fixtures.js';
import { RangeBlobSource, gzipLayer } from './range-fixtures.js';

const layer = gzipLayer();

async function store(t: Test, blobs: RangeBlobSource, rangeReads = true, more: { rangeCompletionBytesPerSec?: number; rangeCompletionIdleMs?: number; contentCache?: RecordingContentCache; clock?: ManualClock; backgroundRequestTimeoutMs?: number; background?: LayerStoreOptions['background'] } = {}) {
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: more.contentCache ?? new NoContentCache(), rangeReads, log,
    rangeCompletionBytesPerSec: more.rangeCompletionBytesPerSec ?? 0, rangeCompletionIdleMs: more.rangeCompletionIdleMs, clock: more.clock,
    backgroundRequestTimeoutMs: more.backgroundRequestTimeoutMs, background: more.background,
  });
  t.teardown(() => s.close());
  return { s, records, dir };
}

const deep = layer.tar.length - 3 * 1024 * 1024 + 12345;

t.test('a miss deep in a gzip layer is served by one small range request, byte-exact', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 65536)).equals(layer.tar.subarray(deep, deep + 65536)));
  t.equal(blobs.opens, 0, 'no whole-layer download');
  t.equal(blobs.ranges.length, 1);
  const fetched = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  t.ok(fetched < layer.blob.length / 5, `fetched ${fetched} of ${layer.blob.length} compressed bytes`);
  for (const off of [0, 1024 * 1024 - 7, 5 * 1024 * 1024 + 3, layer.tar.length - 100]) {
    if (!(await readRange(r, off, 100_000)).equals(layer.tar.subarray(off, off + 100_000))) t.fail(`bytes at ${off}`);
  }
  await r.close();
});

t.test('a registry that ignores Range: the layer falls back to the whole download', async (t) => {
  const blobs = new RangeBlobSource(layer);
  blobs.ignoreRange = true;
  const { s, records } = await store(t, blobs);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.opens, 1);
  t.ok(records.some((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole' && rec['code'] === 'CLIP_REGISTRY_RANGE_UNSUPPORTED'));
  await r.close();
});

t.test('a corrupt checkpoint: clear error logged, whole-layer fallback, correct bytes', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s, records } = await store(t, blobs);
  const bad = Buffer.from(layer.checkpoints);
  bad[bad.length - 200]! ^= 0xff; // inside the last window's LZ4 block
  const r = s.open({ ...layer.ref, gzipCheckpoints: bad });
  const off = layer.tar.length - 4096;
  t.ok((await readRange(r, off, 4096)).equals(layer.tar.subarray(off)));
  t.equal(blobs.opens, 1);
  const warn = records.find((rec) => rec['msg'] === 'range reads disabled for layer; fetching it whole');
  t.match(String(warn?.['code']), /^CLIP_ZRAN_/);
  await r.close();
});

t.test('with range reads off, checkpoints are ignored', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs, false);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  t.equal(blobs.ranges.length, 0);
  t.equal(blobs.opens, 1);
  await r.close();
});

t.test('background completion: remaining spans at a bounded rate, then a verified, published cache entry', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const cc = new RecordingContentCache('miss');
  const rate = Math.ceil(layer.blob.length / 1.5);
  const clock = new ManualClock();
  // No idle wait here (its own test below): every wait on the clock is the rate's.
  const { s, dir } = await store(t, blobs, true, { rangeCompletionBytesPerSec: rate, rangeCompletionIdleMs: 0, contentCache: cc, clock });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  const mid = 6 * 1024 * 1024 + 17;
  t.ok((await readRange(r, mid, 4096)).equals(layer.tar.subarray(mid, mid + 4096)), 'on-demand reads still served during completion');
  const onDemand = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  await s.drain();
  const total = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  // The clock only moves when the completion waits: after each batch it owes batch bytes / rate.
  // Completion fetched what the two reads did not (at least total - onDemand; onDemand may
  // include its first batch), so it waited at least that many bytes' worth of the rate.
  const rateWaits = clock.slept.reduce((n, ms) => n + ms, 0);
  const owed = ((total - onDemand) / rate) * 1000;
  t.ok(rateWaits >= owed - 1, `completion bounded by the rate: waited ${rateWaits.toFixed(0)} ms for ${total - onDemand}+ bytes (owed ${owed.toFixed(0)} ms)`);
  t.ok(rateWaits <= (total / rate) * 1000 + 1, `and no longer than the whole blob at that rate: ${rateWaits.toFixed(0)} ms`);
  t.ok(rateWaits >= 1000, 'most of the 1.5 s the blob takes at this rate');
  t.equal(blobs.opens, 0, 'never a whole-blob GET');
  const covered = new Set<number>();
  for (const [a, b] of blobs.ranges) for (let x = a; x < b; x += 4096) covered.add(Math.floor(x / 4096));
  t.ok(covered.size >= Math.floor(layer.blob.length / 4096) - 2, 'the ranges cover the blob');
  t.same(cc.calls.filter((c) => c.op === 'storeFile').map((c) => c.key), [layer.ref.diffId], 'published to the ContentCache');
  t.ok(existsSync(join(dir, 'layers', layer.hex)), 'a complete disk-cache entry');
  t.notOk(existsSync(join(dir, 'sparse-layers', `${layerStateKey({ ...layer.ref, gzipCheckpoints: layer.checkpoints })}.spans`)), 'the sparse record is gone');
  const n = blobs.ranges.length;
  const tail = layer.tar.length - 5000;
  t.ok((await readRange(r, tail, 5000)).equals(layer.tar.subarray(tail)));
  t.equal(blobs.ranges.length, n, 'served from the disk cache');
  await r.close();
});

t.test('completion waits until on-demand reads have been idle for rangeCompletionIdleMs', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const clock = new ManualClock();
  clock.holdFrom = 0; // hold the first wait: nothing moves the clock but the test
  const { s } = await store(t, blobs, true, { rangeCompletionBytesPerSec: 1 << 30, rangeCompletionIdleMs: 2_000, clock });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  await readRange(r, deep, 4096);
  await clock.held();
  t.same(clock.slept, [2_000], 'the completion waits the whole idle time after the read');
  t.equal(blobs.ranges.length, 1, 'and fetches nothing while it waits');
  await r.close();
  await s.close();
  t.equal(clock.aborted, 1, 'close ends the idle wait');
});

t.test('restart in the middle of a background completion: stopped promptly, resumed from the spans on disk', async (t) => {
  const blobs = new RangeBlobSource(layer);
  const clock = new ManualClock();
  clock.holdFrom = 1; // the idle wait passes; the rate wait after the first completion batch is held
  const { s, dir } = await store(t, blobs, true, { rangeCompletionBytesPerSec: 200_000, clock });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  await readRange(r, deep, 4096);
  await clock.held(); // completion fetched a batch and now waits for the rate: the middle of it
  const batched = blobs.ranges.length;
  t.ok(batched >= 2, `a completion batch was fetched after the read (${batched} range requests)`);
  await r.close();
  await s.close(); // never resolves unless close cuts the completion's wait short
  t.equal(clock.aborted, 1, 'close aborted the completion in its rate wait');
  t.equal(blobs.ranges.length, batched, 'no range request after close');
  t.ok(existsSync(join(dir, 'sparse-layers', `${layerStateKey({ ...layer.ref, gzipCheckpoints: layer.checkpoints })}.spans`)));

  // Restart: a new store on the same directories resumes, fetching only spans not yet on disk.
  const before = blobs.ranges.reduce((n, [a, b]) => n + b - a, 0);
  const again = new RangeBlobSource(layer);
  const s2 = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs: again, contentCache: new NoContentCache(), rangeReads: true, rangeCompletionBytesPerSec: 1e9, rangeCompletionIdleMs: 0,
  });
  t.teardown(() => s2.close());
  const r2 = s2.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.ok((await readRange(r2, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), 'a span from the first run, after its hash check');
  await s2.drain();
  const after = again.ranges.reduce((n, [a, b]) => n + b - a, 0);
  t.ok(before > 0 && after < layer.blob.length && after + before >= layer.blob.length - 64, `resumed: ${before} + ${after} of ${layer.blob.length}`);
  t.ok(existsSync(join(dir, 'layers', layer.hex)), 'completed after the restart');
  const tail = layer.tar.length - 5000;
  t.ok((await readRange(r2, tail, 5000)).equals(layer.tar.subarray(tail)));
  await r2.close();
});

t.test('a sequential reader\'s readahead fetch ends on backgroundRequestTimeoutMs, not the 120 s default', async (t) => {
  /** Serves the first Range request (the reader's own span); every later one (readahead) never answers. */
  class StallAfterFirst extends RangeBlobSource {
    readonly ended: unknown[] = [];
    override async fetchRange(ref: LayerRef, start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
      if (this.ranges.length === 0 || !signal) return super.fetchRange(ref, start, end, signal);
      this.ranges.push([start, end]);
      return new Promise((_resolve, reject) => signal.addEventListener('abort', () => (this.ended.push(signal.reason), reject(signal.reason)), { once: true }));
    }
  }
  const blobs = new StallAfterFirst(layer);
  const { s } = await store(t, blobs, true, { backgroundRequestTimeoutMs: 50 });
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  // 1 MiB spans: 768 KiB read in order from one span starts the readahead of the next ones.
  for (let off = 0; off < 768 * 1024; off += 128 * 1024) {
    if (!(await readRange(r, off, 128 * 1024)).equals(layer.tar.subarray(off, off + 128 * 1024))) t.fail(`bytes at ${off}`);
  }
  t.ok(blobs.ranges.length >= 2, `the readahead asked for the spans ahead (${blobs.ranges.length} requests)`);
  // Polled with a generous bound: only the configured deadline (50 ms) can end it this soon.
  const deadline = Date.now() + 20_000;
  while (blobs.ended.length < blobs.ranges.length - 1 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(blobs.ended.length, blobs.ranges.length - 1, 'every stalled readahead request was aborted by its deadline');
  t.same(blobs.ended.map((e) => (e as Error).name), blobs.ended.map(() => 'TimeoutError'), 'timeouts, not the layer closing');
  await r.close();
});

t.test("a lazy layer's verified spans are a file range (the FUSE driver's splice); absent spans are not, and ask for nothing", async (t) => {
  const { readSync } = await import('node:fs');
  const blobs = new RangeBlobSource(layer);
  const { s } = await store(t, blobs);
  const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
  t.equal(r.diskRange?.(deep, 4096), undefined, 'before any read: none');
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
  const requests = blobs.ranges.length;
  const range = r.diskRange?.(deep, 4096);
  t.ok(range, 'after the read fetched its spans: a range');
  const got = Buffer.alloc(4096);
  t.equal(readSync(range!.fd, got, 0, 4096, range!.position), 4096);
  t.ok(got.equals(layer.tar.subarray(deep, deep + 4096)), 'the sparse file holds the layer bytes there');
  t.equal(r.diskRange?.(0, 4096), undefined, 'a range whose span is absent: none');
  t.equal(blobs.ranges.length, requests, 'and no request for asking');
  const disk = (): number => s.ledger.entries().find((e) => e.diffId === layer.ref.diffId)?.served.disk ?? -1;
  const diskBefore = disk();
  range!.served(4096);
  t.equal(disk() - diskBefore, 4096, 'a spliced read counts as a disk read of the layer');
  await r.close();
  t.equal(r.diskRange?.(deep, 4096), undefined, 'closed reader: none');
});

for (const fillYields of [true, false]) {
  t.test(`completion passes the read-activity gate: before its hash${fillYields ? ' and each fetch batch' : ', not its batches (fillYields: false)'}`, async (t) => {
    const blobs = new RangeBlobSource(layer);
    // The gate's own clock moves with each of its sleeps: a batch held by a request that never ends is let through by the bound.
    const gateClock = new ManualClock();
    const { s } = await store(t, blobs, true, {
      rangeCompletionBytesPerSec: 1 << 30, rangeCompletionIdleMs: 0,
      background: { idleMs: 100, maxDelayMs: 500, runMs: 0, fillYields, clock: gateClock },
    });
    s.readActivity.begin();
    const r = s.open({ ...layer.ref, gzipCheckpoints: layer.checkpoints });
    t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)));
    await s.drain();
    const st = s.readActivity.stats;
    if (fillYields) t.ok(st.fill.waits > 1 && st.fill.forced === st.fill.waits, `${st.fill.waits} fetch batches waited, each let through by the bound`);
    else t.equal(st.fill.waits, 0, 'no fetch batch waited');
    t.same(st.hash, { waits: 1, waitedMs: 500, forced: 1 }, 'the hash waited once, for the bound');
    const tail = layer.tar.length - 5000;
    t.ok((await readRange(r, tail, 5000)).equals(layer.tar.subarray(tail)), 'completed: served whole and byte-exact');
    s.readActivity.end();
    await r.close();
  });
}
