/**
 * Telemetry end to end below the daemon: a real LayerStore and RegistryClient against a real
 * docker-registry, spans exported over OTLP/HTTP (json) to a receiver in this test, and the
 * Prometheus endpoint scraped. Scenarios: cold node (registry), second node (ContentCache, here
 * an in-process map shared by two stores), warm node (disk), and the registry stopped.
 */
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NoContentCache, type ContentCache } from '../../snapshotter/src/contentcache/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { LayerStore, RegistryBlobSource, type LayerRef } from '../../snapshotter/src/storage/index.js';
import { startTelemetry } from '../../snapshotter/src/telemetry/index.js';
import { createHarness } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { childrenOf, startOtlpReceiver, type ReceivedSpan } from '../harness/otlp-receiver.js';

const ERROR = 2;

/** A cluster cache two stores share: enough to show the content_cache tier end to end. */
class MapContentCache implements ContentCache {
  readonly name = 'memory';
  readonly objects = new Map<string, Buffer>();
  async readInto(key: string, offset: number, length: number, buf: Buffer, bufOffset: number): Promise<number | undefined> {
    const o = this.objects.get(key);
    return o ? o.copy(buf, bufOffset, offset, Math.min(o.length, offset + length)) : undefined;
  }
  async has(key: string, size: number): Promise<boolean> {
    return this.objects.get(key)?.length === size;
  }
  async storeFile(key: string, path: string): Promise<void> {
    this.objects.set(key, await readFile(path));
  }
  async getBlob(): Promise<Buffer | undefined> {
    return undefined;
  }
  async putBlob(): Promise<void> {}
  async close(): Promise<void> {}
}

const h = createHarness(t);
const registry = await h.startRegistry();
const images = await buildAndPushImages(registry);
const receiver = await startOtlpReceiver();
t.teardown(() => receiver.stop());
const tel = await startTelemetry({
  endpoint: receiver.url, protocol: 'http/json', sampleRatio: 1, serviceName: 'clip-it', metricsAddress: '127.0.0.1:0', env: {},
});
t.teardown(() => tel.shutdown());
const client = new RegistryClient({ plainHttp: true, maxRetries: 0, connectTimeoutMs: 2_000 });
t.teardown(() => client.close());
const root = await mkdtemp(join(tmpdir(), 'clip-otel-'));
t.teardown(() => rm(root, { recursive: true, force: true }));
const cluster = new MapContentCache();

const layer = images.busybox.layers[0]!;
const ref: LayerRef = { ref: images.busybox.ref, digest: layer.digest, diffId: layer.diffId, uncompressedSize: layer.uncompressedSize };

async function node(name: string, cache: ContentCache): Promise<LayerStore> {
  const store = await LayerStore.create({
    cacheDir: join(root, name), blobs: new RegistryBlobSource(client), contentCache: cache,
    readTimeoutMs: 10_000, maxRetries: 0, retryBaseDelayMs: 10,
  });
  t.teardown(() => store.close());
  return store;
}

/** Read once and return the exported trace of that read: its `clip.read` root and every span in it. */
async function tracedRead(store: LayerStore, offset: number, length: number): Promise<{ read: ReceivedSpan; trace: ReceivedSpan[]; data?: Buffer; error?: unknown }> {
  const before = new Set(receiver.spans().filter((s) => s.name === 'clip.read').map((s) => s.spanId));
  const r = store.open(ref);
  const buf = Buffer.alloc(length);
  let data: Buffer | undefined;
  let error: unknown;
  try {
    data = buf.subarray(0, await r.read(buf, 0, length, offset));
  } catch (err) {
    error = err;
  }
  await store.drain();
  await r.close();
  await tel.flush();
  const isNew = (s: ReceivedSpan) => s.name === 'clip.read' && !before.has(s.spanId);
  const spans = await receiver.waitFor((all) => all.some(isNew));
  const read = spans.find(isNew)!;
  return { read, trace: spans.filter((s) => s.traceId === read.traceId), data, error };
}

const tierNames = (trace: ReceivedSpan[], read: ReceivedSpan) =>
  childrenOf(trace, read).sort((a, b) => (a.startNs < b.startNs ? -1 : 1)).map((s) => [s.name, s.attributes['clip.source'], s.attributes['clip.cache.hit']]);

const nodeA = await node('a', cluster);

t.test('cold node: disk miss → ContentCache miss → registry (fetch, decompress, verify), publish linked', async (t) => {
  const { read, trace, data } = await tracedRead(nodeA, 0, 4096);
  t.equal(data?.length, 4096);
  t.equal(read.resource['service.name'], 'clip-it');
  t.match(read.attributes, { 'clip.layer.digest': layer.digest, 'clip.layer.diff_id': layer.diffId, 'clip.read.offset': 0, 'clip.read.length': 4096 });
  t.same(tierNames(trace, read), [
    ['clip.read.disk', 'disk', false],
    ['clip.read.content_cache', 'content_cache', false],
    ['clip.read.registry', 'registry', true],
  ]);
  const registrySpan = childrenOf(trace, read).find((s) => s.name === 'clip.read.registry')!;
  t.equal(registrySpan.attributes['clip.read.bytes'], 4096);
  const download = childrenOf(trace, registrySpan).find((s) => s.name === 'clip.layer.download');
  t.ok(download, 'download under the registry tier');
  const parts = childrenOf(trace, download!).map((s) => s.name).sort();
  t.same(parts, ['clip.layer.decompress', 'clip.layer.verify', 'clip.registry.fetch_blob']);
  const fetch = childrenOf(trace, download!).find((s) => s.name === 'clip.registry.fetch_blob')!;
  t.match(fetch.attributes, {
    'http.request.method': 'GET', 'http.response.status_code': 200, 'server.address': '127.0.0.1', 'server.port': registry.port,
    'url.full': `http://${registry.host}/v2/clip-test/busybox/blobs/${layer.digest}`, 'http.response.body.size': layer.size,
  });
  t.equal(fetch.kind, 3 /* CLIENT in OTLP */);
  const publish = await receiver.waitFor((all) => all.some((s) => s.name === 'clip.content_cache.publish'));
  const pub = publish.find((s) => s.name === 'clip.content_cache.publish')!;
  t.same(pub.links, [{ traceId: registrySpan.traceId, spanId: registrySpan.spanId }], 'publish links to the triggering read');
  t.ok(cluster.objects.has(layer.diffId), 'published');
});

t.test('second node: the ContentCache serves; no registry tier', async (t) => {
  const nodeB = await node('b', cluster);
  const { read, trace, data } = await tracedRead(nodeB, 1024, 2048);
  t.equal(data?.length, 2048);
  t.same(tierNames(trace, read), [
    ['clip.read.disk', 'disk', false],
    ['clip.read.content_cache', 'content_cache', true],
  ]);
  t.equal(childrenOf(trace, read)[1]!.attributes['clip.read.bytes'], 2048);
});

t.test('warm node: a disk hit, nothing else', async (t) => {
  const { read, trace } = await tracedRead(nodeA, 8192, 512);
  t.same(tierNames(trace, read), [['clip.read.disk', 'disk', true]]);
  // The layer was released after the cold read, so this first read reopens the cached file.
  t.same(trace.map((s) => s.name).sort(), ['clip.disk.verify', 'clip.read', 'clip.read.disk'], 'no ContentCache or registry work');
  const disk = childrenOf(trace, read)[0]!;
  t.equal(childrenOf(trace, disk)[0]?.name, 'clip.disk.verify', 'reopening the cached file is under the disk tier');
  t.equal(disk.attributes['clip.read.bytes'], 512);
});

t.test('registry stopped: the cold read fails and the trace says where', async (t) => {
  await registry.stop();
  t.teardown(() => registry.start());
  const nodeC = await node('c', new NoContentCache());
  const { read, trace, error } = await tracedRead(nodeC, 0, 100);
  t.match(error, { name: 'ClipError', kind: 'unavailable' });
  t.equal(read.status.code, ERROR);
  const registrySpan = childrenOf(trace, read).find((s) => s.name === 'clip.read.registry')!;
  t.equal(registrySpan.status.code, ERROR);
  t.ok(registrySpan.events.includes('exception'));
  const fetch = trace.find((s) => s.name === 'clip.registry.fetch_blob')!;
  t.equal(fetch.status.code, ERROR, 'the blob fetch failed');
  t.equal(fetch.attributes['http.response.status_code'], undefined, 'no response');
  t.equal(receiver.rejected(), 0, 'every export was accepted');
});

t.test('the Prometheus endpoint shows the counters the scenarios moved', async (t) => {
  const text = await (await fetch(tel.metricsUrl!)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  t.ok(value(/^clip_reads_total\{source="registry"\} (\d+)/m) >= 1, 'registry reads');
  t.equal(value(/^clip_reads_total\{source="content_cache"\} (\d+)/m), 1, 'one ContentCache read');
  t.ok(value(/^clip_reads_total\{source="disk"\} (\d+)/m) >= 1, 'disk reads');
  t.equal(value(/^clip_read_bytes_total\{source="content_cache"\} (\d+)/m), 2048);
  t.ok(value(/^clip_registry_fetches_total\{outcome="ok"\} (\d+)/m) >= 1);
  t.ok(value(/^clip_registry_fetches_total\{outcome="error"\} (\d+)/m) >= 1, 'the failed fetch');
  t.ok(value(/^clip_read_errors_total\{source="registry"\} (\d+)/m) >= 1);
  t.ok(value(/^clip_content_cache_publishes_total\{outcome="ok"\} (\d+)/m) >= 1);
  t.match(text, /clip_read_duration_seconds_bucket\{source="disk",le="/);
});
