import t from 'tap';
import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { LayerStore, type LayerStoreOptions } from '../../src/storage/index.js';
import { FakeBlobSource, RecordingContentCache, makeLayer, readRange, tempDir, type TestLayer } from '../storage/fixtures.js';
import { childrenOf, inMemoryMetrics, inMemoryTracing, named } from './in-memory.js';

async function storeFor(t: { teardown(fn: () => Promise<void>): void }, layer: TestLayer, cc: RecordingContentCache, extra: Partial<LayerStoreOptions> = {}) {
  const dir = await tempDir(t);
  const blobs = new FakeBlobSource([layer]);
  const store = await LayerStore.create({ cacheDir: dir, blobs, contentCache: cc, readTimeoutMs: 2_000, retryBaseDelayMs: 10, ...extra });
  t.teardown(() => store.close());
  return { store, blobs, dir };
}

/** The tier children of the one `clip.read` span, in start order. */
function tiersOf(spans: ReadableSpan[], read: ReadableSpan): ReadableSpan[] {
  return childrenOf(spans, read).sort((a, b) => a.startTime[0] - b.startTime[0] || a.startTime[1] - b.startTime[1]);
}

t.test('cold read: clip.read → disk miss, content_cache miss, registry with download, decompress, verify; publish linked', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const layer = makeLayer(200_000);
  const { store } = await storeFor(t, layer, new RecordingContentCache('miss'));
  const r = store.open(layer.ref);
  t.same(await readRange(r, 100, 4000), layer.tar.subarray(100, 4100));
  await store.drain();
  const spans = exp.getFinishedSpans();
  const [read] = named(spans, 'clip.read');
  t.ok(read, 'one read span');
  t.match(read!.attributes, { 'clip.layer.digest': layer.ref.digest, 'clip.layer.diff_id': layer.ref.diffId, 'clip.read.offset': 100, 'clip.read.length': 4000 });
  const tiers = tiersOf(spans, read!);
  t.same(tiers.map((s) => [s.name, s.attributes['clip.source'], s.attributes['clip.cache.hit']]), [
    ['clip.read.disk', 'disk', false],
    ['clip.read.content_cache', 'content_cache', false],
    ['clip.read.registry', 'registry', true],
  ]);
  const registry = tiers[2]!;
  t.equal(registry.attributes['clip.read.bytes'], 4000);
  const [download] = named(spans, 'clip.layer.download');
  t.equal(download!.parentSpanContext?.spanId, registry.spanContext().spanId, 'the download is a child of the read that started it');
  t.equal(download!.attributes['clip.compression'], 'gzip');
  t.same(childrenOf(spans, download!).map((s) => s.name).sort(), ['clip.layer.decompress', 'clip.layer.verify']);
  t.equal(named(spans, 'clip.layer.decompress')[0]!.attributes['clip.bytes'], layer.tar.length);
  const [publish] = named(spans, 'clip.content_cache.publish');
  t.ok(publish, 'publish span');
  t.not(publish!.spanContext().traceId, read!.spanContext().traceId, 'publish is background: its own trace');
  t.equal(publish!.links[0]?.context.spanId, registry.spanContext().spanId, 'linked to the read that triggered the download');
  t.equal(await metrics.value('clip_reads', { source: 'registry' }), 1);
  t.equal(await metrics.value('clip_read_bytes', { source: 'registry' }), 4000);
  t.equal(await metrics.value('clip_content_cache_publishes', { outcome: 'ok' }), 1);
});

t.test('second node: the ContentCache serves the read; no registry span', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const layer = makeLayer(100_000);
  const cc = new RecordingContentCache('hit');
  cc.objects.set(layer.ref.diffId, layer.tar);
  const { store, blobs } = await storeFor(t, layer, cc);
  t.same(await readRange(store.open(layer.ref), 0, 512), layer.tar.subarray(0, 512));
  const spans = exp.getFinishedSpans();
  const [read] = named(spans, 'clip.read');
  const tiers = tiersOf(spans, read!);
  t.same(tiers.map((s) => [s.name, s.attributes['clip.cache.hit'], s.attributes['clip.read.bytes']]), [
    ['clip.read.disk', false, 0],
    ['clip.read.content_cache', true, 512],
  ]);
  t.equal(tiers[1]!.attributes['clip.content_cache.backend'], 'recording');
  t.equal(blobs.opens, 0);
  t.equal(await metrics.value('clip_reads', { source: 'content_cache' }), 1);
  t.equal(await metrics.value('clip_read_duration_seconds', { source: 'content_cache' }), 1, 'one latency sample');
});

t.test('warm node: disk hits are spanned once per interval and tallied in between; metrics count all', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const layer = makeLayer(100_000);
  const { store } = await storeFor(t, layer, new RecordingContentCache('miss'), { diskSpanIntervalMs: 60_000 });
  const r = store.open(layer.ref);
  await readRange(r, 0, 100); // cold: downloads
  await store.drain();
  exp.reset();
  for (let i = 0; i < 5; i++) t.same(await readRange(r, 1000 * i, 100), layer.tar.subarray(1000 * i, 1000 * i + 100));
  const spans = exp.getFinishedSpans();
  const reads = named(spans, 'clip.read');
  t.equal(reads.length, 1, 'only the first disk hit of the interval gets a span');
  const tiers = tiersOf(spans, reads[0]!);
  t.same(tiers.map((s) => [s.name, s.attributes['clip.source'], s.attributes['clip.cache.hit'], s.attributes['clip.read.bytes']]), [['clip.read.disk', 'disk', true, 100]]);
  t.equal(await metrics.value('clip_reads', { source: 'disk' }), 5, 'every disk hit is counted');
  t.equal(await metrics.value('clip_read_bytes', { source: 'disk' }), 500);
});

t.test('a registry failure marks the registry tier and the read failed', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const layer = makeLayer(50_000);
  const { store, blobs } = await storeFor(t, layer, new RecordingContentCache('unavailable'), { maxRetries: 0 });
  blobs.behaviour.missing = true;
  await t.rejects(readRange(store.open(layer.ref), 0, 100), { name: 'ClipError', kind: 'unavailable' });
  await store.drain();
  const spans = exp.getFinishedSpans();
  const [read] = named(spans, 'clip.read');
  t.equal(read!.status.code, SpanStatusCode.ERROR);
  const tiers = tiersOf(spans, read!);
  const cc = tiers.find((s) => s.name === 'clip.read.content_cache')!;
  t.equal(cc.status.code, SpanStatusCode.ERROR, 'the ContentCache outage is recorded even though the read fell through');
  t.equal(cc.attributes['clip.cache.hit'], false);
  const reg = tiers.find((s) => s.name === 'clip.read.registry')!;
  t.equal(reg.status.code, SpanStatusCode.ERROR);
  t.equal(reg.attributes['error.type'], 'CLIP_LAYER_FETCH_FAILED');
  t.equal(reg.events[0]?.name, 'exception');
  t.equal(named(spans, 'clip.layer.download')[0]!.status.code, SpanStatusCode.ERROR);
  t.equal(await metrics.value('clip_read_errors', { source: 'registry' }), 1);
});

t.test('with tracing off the read path exports nothing but still counts', async (t) => {
  const metrics = inMemoryMetrics(t);
  const layer = makeLayer(20_000);
  const { store } = await storeFor(t, layer, new RecordingContentCache('miss'));
  const r = store.open(layer.ref);
  await readRange(r, 0, 10);
  await store.drain();
  await readRange(r, 0, 10);
  t.equal(await metrics.value('clip_reads', { source: 'registry' }), 1);
  t.equal(await metrics.value('clip_reads', { source: 'disk' }), 1);
});
