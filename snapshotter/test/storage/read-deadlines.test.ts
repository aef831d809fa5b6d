/**
 * Issue 12, deliver 8: every wait a read can make ends at a deadline — a read that joins a span
 * fetch someone else started, a Range request that never finishes, a whole-layer download that
 * trickles, a background completion batch — and the layer works again once its registry does.
 */
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, type LayerStoreOptions } from '../../src/storage/index.js';
import { FakeBlobSource, ManualClock, makeLayer, readRange, recordingLogger, tempDir } from './fixtures.js';
import { RangeBlobSource, gzipLayer } from './range-fixtures.js';

const layer = gzipLayer();
const deep = layer.tar.length - 3 * 1024 * 1024 + 12345;
const ranged = { ...layer.ref, gzipCheckpoints: layer.checkpoints };
// AbortSignal.timeout's timers do not hold the process open; while a test waits on nothing else, this does.
const keepAlive = setInterval(() => {}, 60_000);
t.teardown(() => clearInterval(keepAlive));

async function store(t: Test, blobs: FakeBlobSource, more: Partial<LayerStoreOptions> = {}) {
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log, retryBaseDelayMs: 10, ...more,
  });
  t.teardown(() => s.close());
  return { s, records };
}

t.test('a Range request that never finishes: the read fails CLIP_LAYER_READ_TIMEOUT and a download is started; a read joining that hung download ends at its deadline too', async (t) => {
  const blobs = new RangeBlobSource(layer);
  blobs.hangRanges = true;
  blobs.behaviour.hangOpens = 1;
  const clock = new ManualClock();
  const { s, records } = await store(t, blobs, { readTimeoutMs: 300, stallTimeoutMs: 60_000, maxRetries: 1, clock });
  const r = s.open(ranged);
  const opened = async (): Promise<void> => {
    for (let i = 0; i < 500 && blobs.opens === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  // One deadline for the read across tiers: the range tier used it up, the whole-layer path gets none.
  await t.rejects(readRange(r, deep, 4096), { kind: 'unavailable', code: 'CLIP_LAYER_READ_TIMEOUT' });
  const failed = records.find((rec) => rec['msg'] === 'range read failed; this layer uses the whole-layer path for now');
  t.equal(failed?.['code'], 'CLIP_RANGE_FETCH_TIMEOUT', 'the range tier says why, and treats it as transient');
  await opened();
  t.equal(blobs.opens, 1, 'a whole-layer download was started for when the registry recovers');
  // The registry recovers; the hung download attempt is still hung (its stall timer is long), so a
  // read joining it also ends at its own deadline.
  blobs.hangRanges = false;
  await t.rejects(readRange(r, 0, 4096), { code: 'CLIP_LAYER_READ_TIMEOUT' }, 'a read joining a hung download ends at its deadline');
  await r.close();
});

t.test('a read that joins a span fetch started by a prefetch ends at its own deadline', async (t) => {
  const blobs = new RangeBlobSource(layer);
  blobs.hangRanges = true;
  blobs.behaviour.hangOpens = 5;
  const { s, records } = await store(t, blobs, { readTimeoutMs: 300, stallTimeoutMs: 60_000, backgroundRequestTimeoutMs: 60_000, maxRetries: 0 });
  const r = s.open(ranged);
  const stop = new AbortController();
  t.teardown(() => stop.abort());
  const prefetched = s.prefetch(ranged, [[deep, deep + 4096]], 0, stop.signal);
  for (let i = 0; i < 500 && blobs.ranges.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(blobs.ranges.length, 1, 'the prefetch fetch is in flight');
  await t.rejects(readRange(r, deep, 4096), { code: 'CLIP_LAYER_READ_TIMEOUT' }, 'the joined read did not wait for the prefetch');
  t.equal(blobs.ranges.length, 1, 'the read joined the prefetch\'s fetch instead of sending its own');
  t.ok(records.some((rec) => rec['code'] === 'CLIP_RANGE_FETCH_TIMEOUT'));
  stop.abort();
  t.equal(await prefetched, 0, 'the prefetch ends when stopped');
  await r.close();
});

t.test('a prefetch Range request has its own deadline even when the prefetch has none', async (t) => {
  const blobs = new RangeBlobSource(layer);
  blobs.hangRanges = true;
  const { s, records } = await store(t, blobs, { backgroundRequestTimeoutMs: 200 });
  const fetched = await s.prefetch(ranged, [[deep, deep + 4096]], 0, new AbortController().signal);
  t.equal(fetched, 0);
  t.ok(records.some((rec) => rec['msg'] === 'range read failed; this layer uses the whole-layer path for now' && rec['code'] === 'CLIP_RANGE_FETCH_TIMEOUT'));
});

t.test('background completion: a batch that never arrives fails the completion; the next read restarts it', async (t) => {
  const blobs = new RangeBlobSource(layer);
  // Long enough for the restarted completion's batches to arrive on a loaded machine (CI), short
  // enough that the hung batch fails soon.
  const { s, records } = await store(t, blobs, { rangeCompletionBytesPerSec: 1 << 30, rangeCompletionIdleMs: 0, backgroundRequestTimeoutMs: 1_500, rangeRetryAfterMs: 0 });
  const r = s.open(ranged);
  t.ok((await readRange(r, deep, 4096)).equals(layer.tar.subarray(deep, deep + 4096)), 'the first read is served by Range');
  blobs.hangRanges = true;
  await s.drain();
  const failed = records.find((rec) => rec['msg'] === 'background completion of a range-read layer failed');
  t.match(String(failed?.['err']), /not fetched within the deadline/, 'the completion batch hit its deadline');
  blobs.hangRanges = false;
  const end = layer.tar.length - 4096;
  t.ok((await readRange(r, end, 4096)).equals(layer.tar.subarray(end)), 'a read of a span not yet fetched works again');
  await s.drain();
  t.ok(records.some((rec) => rec['msg'] === 'layer completed from range reads'), 'and the completion ran to the end');
  await r.close();
});

t.test('a whole-layer download that trickles is aborted by the stall timer, not only a silent one', async (t) => {
  const whole = makeLayer(4 << 20);
  t.ok(whole.blob.length > 256 * 1024, `the blob (${whole.blob.length} bytes) is larger than a few stall intervals' minimum`);
  const blobs = new FakeBlobSource([whole], { chunkSize: 512, delayMs: 20 });
  const { s } = await store(t, blobs, { readTimeoutMs: 120_000, stallTimeoutMs: 300, maxRetries: 0, rangeReads: false });
  const r = s.open(whole.ref);
  await t.rejects(readRange(r, whole.tar.length - 10, 10), { code: 'CLIP_LAYER_FETCH_FAILED', message: /fewer than 65536 bytes in 300 ms/ });
  blobs.behaviour.delayMs = 0;
  blobs.behaviour.chunkSize = 64 * 1024;
  t.ok((await readRange(r, whole.tar.length - 10, 10)).equals(whole.tar.subarray(whole.tar.length - 10)), 'the next read downloads it');
  await r.close();
});
