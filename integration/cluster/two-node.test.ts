/**
 * The point of clip, end to end on two nodes (issues 5 and 6): two containerd instances, each with
 * its own clip daemon, one registry and one Redis ContentCache from the plugin config. Node A reads
 * a layer cold (registry), decompresses it once and publishes it; node B serves the same reads from
 * the ContentCache and never fetches that layer from the registry; node A's rerun hits its disk.
 * Every step is checked in the daemons' exported spans (OTLP/HTTP JSON) and Prometheus metrics,
 * including the error status of a read that fails because the registry is down.
 */
import t from 'tap';
import { clip, eventually, metric, pullAndRun, startClusterNode, startTwoNodeStack, writeClusterKey } from '../harness/clip-node.js';
import { startRedis } from '../harness/redis.js';
import { startOtlpReceiver, type ReceivedSpan } from '../harness/otlp-receiver.js';
import type { Registry } from '../harness/index.js';

t.setTimeout(600_000);
let seq = 0;

const mustRun = { allowFailure: false };

function blobGets(r: Registry, mark: number, digest: string): number {
  return r.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${digest}`)).length;
}

const service = (s: ReceivedSpan): unknown => s.resource['service.name'];
const bySource = (spans: ReceivedSpan[], node: string, source: string): ReceivedSpan[] =>
  spans.filter((s) => service(s) === `clip-${node}` && s.name === `clip.read.${source}` && s.attributes['clip.source'] === source);

t.test('two nodes share decompressed layers through the ContentCache', async (t) => {
  const { ha, hb, registry, images } = await startTwoNodeStack(t, 'clip-');
  const redis = await startRedis(t);
  const otlp = await startOtlpReceiver();
  t.teardown(() => otlp.stop());
  // Signed objects (issue 12): the tiers below are the authenticated ContentCache.
  const keyFile = await writeClusterKey(ha.root);
  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address], otlpUrl: otlp.url, keyFile });
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address], otlpUrl: otlp.url, keyFile });
  const tricky = images.tricky;
  const layer1 = tricky.layers[0]!;
  const indexed = await clip(['index', tricky.ref, '--plain-http', '--json']);
  t.equal(indexed.code, 0, 'index artifact pushed (no layer is downloaded at Prepare)');

  await t.test('node A: cold read from the registry, published to the ContentCache', async (t) => {
    const mark = registry.accessLogLines().length;
    t.equal((await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt'], mustRun)).stdout, 'keep\n');
    t.equal(blobGets(registry, mark, layer1.digest), 1, 'node A fetched layer 1 from the registry exactly once');
    const stored = await eventually(() => /"msg":"stored decompressed layer"|"msg":"stored"/.test(a.snap.log()));
    t.ok(stored, 'node A logged the layer stored in the ContentCache');
  });

  await t.test('node B: the same reads come from the ContentCache, not the registry', async (t) => {
    const mark = registry.accessLogLines().length;
    t.equal((await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt'], mustRun)).stdout, 'keep\n');
    t.equal(blobGets(registry, mark, layer1.digest), 0, 'node B never fetched layer 1 from the registry');
    t.ok((await metric(b.metricsUrl, 'clip_reads', 'content_cache')) > 0, 'node B metrics: reads served by the ContentCache');
    t.equal(await metric(b.metricsUrl, 'clip_reads', 'registry'), 0, 'node B metrics: no registry reads');
    t.ok((await metric(a.metricsUrl, 'clip_reads', 'registry')) > 0, 'node A metrics: registry reads');
  });

  await t.test('node A again: disk hits', async (t) => {
    const mark = registry.accessLogLines().length;
    const res = await a.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...a.c.runcArgs(), tricky.ref, `a-rerun-${++seq}`, 'cat', '/data/modified.txt']);
    t.equal(res.stdout, 'v2 from layer 2\n');
    t.equal(blobGets(registry, mark, layer1.digest), 0, 'layer 1 came from node A’s disk');
    t.ok((await metric(a.metricsUrl, 'clip_reads', 'disk')) > 0, 'node A metrics: disk reads');
  });

  await t.test('exported span trees show all three tiers', async (t) => {
    const spans = await otlp.waitFor((s) => bySource(s, 'a', 'registry').length > 0 && bySource(s, 'b', 'content_cache').length > 0 && bySource(s, 'a', 'disk').length > 0, 30_000);
    for (const [node, source] of [['a', 'registry'], ['b', 'content_cache'], ['a', 'disk']] as const) {
      const tier = bySource(spans, node, source)[0]!;
      t.ok(tier, `node ${node}: a clip.read.${source} span with clip.source=${source}`);
      const parent = spans.find((s) => s.spanId === tier.parentSpanId);
      t.equal(parent?.name, 'clip.read', `node ${node}: the ${source} span is a child of a clip.read span`);
      t.ok(tier.attributes['clip.layer.diff_id'], 'carries the diffID');
    }
    t.ok(spans.some((s) => s.name === 'clip.registry.fetch_blob' && service(s) === 'clip-a' && s.attributes['http.response.status_code'] === 200), 'registry fetch with HTTP attributes');
    t.ok(spans.some((s) => s.name === 'clip.layer.prepare' && service(s) === 'clip-b'), 'layer preparation traced');
    t.ok(spans.some((s) => s.name.startsWith('clip.content_cache.publish') && service(s) === 'clip-a'), 'node A traced the publish');
  });

  await t.test('a read whose registry is down fails with an error span', async (t) => {
    await registry.stop();
    // Layer 3 was never read by anyone: not on disk, not in the ContentCache.
    const res = await b.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...b.c.runcArgs(), tricky.ref, `b-down-${++seq}`, 'cat', '/data/delete-dir/recreated.txt'], { allowFailure: true, timeoutMs: 120_000 });
    t.not(res.stdout, 'back in layer 3\n', 'the read could not be served');
    // The layer is checked before containerd mounts the container: Prepare (and Mounts) answer
    // UNAVAILABLE when nothing can serve a lazy parent, so the failure is on the RPC span, before
    // any read.
    const rejectedRpc = (x: ReceivedSpan): boolean =>
      (x.name.endsWith('/Prepare') || x.name.endsWith('/Mounts')) && x.attributes['rpc.grpc.status_code'] === 14;
    const isFailure = (x: ReceivedSpan): boolean =>
      service(x) === 'clip-b' && x.status.code === 2 && (x.name === 'clip.read.registry' || rejectedRpc(x));
    const spans = await otlp.waitFor((s) => s.some(isFailure), 30_000);
    const failed = spans.find(isFailure)!;
    t.match(failed.status.message, /unavailable/, `error status says why: ${failed.status.message}`);
    t.ok(failed.events.includes('exception'), 'the exception is recorded on the span');
    await registry.start();
  });
});
