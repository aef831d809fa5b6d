/**
 * Traces in a real Jaeger (issue 17): Jaeger all-in-one built from Go modules by `make deps`, two
 * daemons exporting to it — node A over OTLP/gRPC, node B over OTLP/HTTP protobuf — one registry
 * and one Redis ContentCache. Node A starts a container cold (registry), node B the same image from
 * the ContentCache, then node A again warm (disk). Each container start must be ONE trace in
 * Jaeger, found through Jaeger's own query API by `clip.source` = registry / content_cache / disk,
 * holding the Prepare RPCs, the index resolutions and the reads with their tiers, and ending with
 * the per-layer answers. `clip-snapshotter status` on each node must tell how the layers were served.
 */
import t, { type Test } from 'tap';
import { clip, eventually, logRecords, pullAndRun, startClusterNode, startTwoNodeStack, type ClusterNode } from '../harness/clip-node.js';
import { jaegerMissingReason, parentOf, tagOf, type Jaeger, type JaegerSpan, type JaegerTrace } from '../harness/jaeger.js';
import { startRedis } from '../harness/redis.js';
import type { LayerStatus } from '../../snapshotter/src/status/index.js';

t.setTimeout(900_000);
const PREPARE = 'containerd.services.snapshots.v1.Snapshots/Prepare';
let seq = 0;


/**
 * The node's `[tracing]` table: OTLP `protocol` to Jaeger, short start traces; FUSE in the daemon,
 * the one mode whose start traces hold the first reads (README "State, restarts, crashes").
 */
// Completed layers stay on FUSE: extracted, a warm start's reads would never reach the daemon, and
// the disk tier's spans are what the warm-start case looks for.
function tracingToml(name: string, protocol: 'grpc' | 'http/protobuf', endpoint: string): string {
  return ['[tracing]', `endpoint = "${endpoint}"`, `protocol = "${protocol}"`, `service_name = "clip-${name}"`, 'start_trace_idle_ms = 4000', '[fuse_server]', 'mode = "in_process"', '[cache]', 'extract_completed = false', ''].join('\n');
}

/** `clip-snapshotter status IMAGE --json` against a node's daemon. */
async function status(n: ClusterNode, image: string): Promise<{ layers: LayerStatus[]; text: string }> {
  const json = await clip(['status', image, '--address', n.snap.address, '--json']);
  if (json.code !== 0) throw new Error(`status on ${n.name}: ${json.stderr}`);
  const text = await clip(['status', image, '--address', n.snap.address]);
  return { ...(JSON.parse(json.stdout) as { layers: LayerStatus[] }), text: text.stdout };
}

const roots = (tr: JaegerTrace): JaegerSpan[] => tr.spans.filter((s) => s.operationName === 'clip.start');

/**
 * Wait until Jaeger holds a start trace of `service` for `image`, found by `tags`, that is closed
 * (its root carries the per-image answers) and newer than `after` (µs); returns it whole.
 */
async function startTrace(j: Jaeger, service: string, tags: Record<string, string>, image: string, after: number): Promise<JaegerTrace | undefined> {
  let found: JaegerTrace | undefined;
  await eventually(async () => {
    const traces = await j.findTraces(service, tags);
    found = traces.find((tr) => roots(tr).some((r) => tagOf(r, 'clip.image.ref') === image && r.startTime > after && tagOf(r, 'clip.image.layers.lazy') !== undefined));
    return found !== undefined;
  }, 60_000);
  return found;
}

/** The `clip.read` spans of a trace with their tier children, as [tier, clip.source] pairs. */
function tiers(tr: JaegerTrace): Array<[string, unknown]> {
  return tr.spans
    .filter((s) => s.operationName.startsWith('clip.read.') && parentOf(tr, s)?.operationName === 'clip.read')
    .map((s) => [s.operationName, tagOf(s, 'clip.source')]);
}

/** What every start trace holds: one root, the Prepare RPCs under it, an index resolution per layer. */
function checkShape(t: Test, tr: JaegerTrace, layers: number, node: string): void {
  const [root] = roots(tr);
  t.equal(roots(tr).length, 1, `${node}: one clip.start root`);
  t.equal(root?.references.length, 0, `${node}: the root has no parent`);
  const prepares = tr.spans.filter((s) => s.operationName === PREPARE);
  t.ok(prepares.length >= 1, `${node}: Prepare RPCs in the trace (${prepares.length})`);
  t.ok(prepares.every((p) => parentOf(tr, p)?.operationName === 'clip.start'), `${node}: every Prepare is a child of clip.start`);
  t.ok(tr.spans.some((s) => s.operationName === 'clip.read'), `${node}: the container's reads are in the same trace`);
  const summaries = tr.spans.filter((s) => s.operationName === 'clip.layer.summary');
  t.ok(summaries.length >= 1 && summaries.length <= layers, `${node}: a clip.layer.summary per layer touched (${summaries.length})`);
}

async function run(): Promise<void> {
  const { ha, hb, registry, images } = await startTwoNodeStack(t, 'clip-jaeger-');
  const jaeger = await ha.startJaeger();
  const redis = await startRedis(t);
  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address], extraToml: tracingToml('a', 'grpc', jaeger.otlpGrpcUrl) });
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address], extraToml: tracingToml('b', 'http/protobuf', jaeger.otlpHttpUrl) });
  const image = images.tricky;
  const layers = image.layers.length;
  const indexed = await clip(['index', image.ref, '--plain-http', '--json']);
  t.equal(indexed.code, 0, 'index artifact pushed: no layer is downloaded at Prepare');

  let coldRoot = 0;
  await t.test('cold node A (OTLP/gRPC): one trace with Prepare, index resolution and registry reads', async (t) => {
    const before = Date.now() * 1000;
    t.equal((await pullAndRun(a, image.ref, ['cat', '/data/keep.txt'], { allowFailure: false })).stdout, 'keep\n');
    const tr = await startTrace(jaeger, 'clip-a', { 'clip.source': 'registry', 'clip.cache.hit': 'true' }, image.ref, before);
    if (!tr) return void t.fail('no closed start trace of node A found by clip.source=registry in Jaeger');
    checkShape(t, tr, layers, 'A');
    coldRoot = roots(tr)[0]!.startTime;
    const resolves = tr.spans.filter((s) => s.operationName === 'clip.index.resolve');
    t.equal(resolves.length, layers, 'an index resolution per layer');
    t.ok(resolves.every((s) => tagOf(s, 'clip.index.source') === 'artifact'), `indexes from the artifact: ${resolves.map((s) => tagOf(s, 'clip.index.source')).join(',')}`);
    t.ok(tiers(tr).some(([n, src]) => n === 'clip.read.registry' && src === 'registry'), `a read served by the registry tier: ${JSON.stringify(tiers(tr))}`);
    const fetch = tr.spans.find((s) => s.operationName === 'clip.registry.fetch_blob');
    t.equal(fetch && tagOf(fetch, 'clip.source'), 'registry', 'the blob GET carries clip.source=registry');
    t.equal(fetch && tagOf(fetch, 'http.response.status_code'), 200);
    const root = roots(tr)[0]!;
    const registryBytes = ['on_demand', 'whole', 'prefetch'].reduce((n, w) => n + Number(tagOf(root, `clip.fetched.${w}`) ?? 0), 0);
    t.ok(registryBytes > 0, `the root counts registry bytes fetched on demand (${registryBytes})`);
    t.equal(tagOf(root, 'clip.fetched.content_cache'), 0, 'nothing from the ContentCache yet');
    t.ok(Number(tagOf(root, 'clip.time_to_first_read_ms')) >= 0, `time to first read on the root: ${tagOf(root, 'clip.time_to_first_read_ms')} ms`);
    const served = tr.spans.filter((s) => s.operationName === 'clip.layer.summary' && Number(tagOf(s, 'clip.served.registry')) > 0);
    t.ok(served.length >= 1 && served.every((s) => ['lazy', 'whole'].includes(String(tagOf(s, 'clip.layer.mode')))), 'the layers read say lazy or whole');
    t.ok((await jaeger.services()).includes('clip-a'), 'node A is a service in Jaeger');
  });

  await t.test('node A status: layers served from the registry, then completed', async (t) => {
    // Background completion (or the whole download) ends with the layer complete and published.
    t.ok(await eventually(() => logRecords(a.snap, 'stored').length > 0, 120_000), 'node A published a layer to the ContentCache');
    let st = await status(a, image.ref);
    t.equal(st.layers.length, layers, `one line per mounted layer:\n${st.text}`);
    const read = st.layers.filter((l) => l.served.registry > 0);
    t.ok(read.length >= 1, 'the layer the container read was served by the registry');
    t.ok(read.every((l) => l.fetched.on_demand + l.fetched.whole > 0 && l.fetched.content_cache === 0), 'fetched from the registry, nothing from the ContentCache');
    t.ok(await eventually(async () => (st = await status(a, image.ref)).layers.filter((l) => l.served.registry > 0).every((l) => l.complete && !l.completing), 120_000), `read layers complete on node A:\n${st.text}`);
    t.match(st.text, /present .* \(100%\), complete/, 'the text says what is present');
  });

  let ccRoot = 0;
  await t.test('node B (OTLP/HTTP protobuf): the same start from the ContentCache', async (t) => {
    const before = Date.now() * 1000;
    t.equal((await pullAndRun(b, image.ref, ['cat', '/data/keep.txt'], { allowFailure: false })).stdout, 'keep\n');
    const tr = await startTrace(jaeger, 'clip-b', { 'clip.source': 'content_cache', 'clip.cache.hit': 'true' }, image.ref, before);
    if (!tr) return void t.fail('no closed start trace of node B found by clip.source=content_cache in Jaeger');
    checkShape(t, tr, layers, 'B');
    ccRoot = roots(tr)[0]!.startTime;
    t.equal(tr.spans.filter((s) => s.operationName === 'clip.index.resolve').length, layers, 'an index resolution per layer');
    t.ok(tiers(tr).some(([n, src]) => n === 'clip.read.content_cache' && src === 'content_cache'), `a read served by the ContentCache: ${JSON.stringify(tiers(tr))}`);
    t.notOk(tiers(tr).some(([n]) => n === 'clip.read.registry'), 'no read went to the registry');
    const root = roots(tr)[0]!;
    t.ok(Number(tagOf(root, 'clip.fetched.content_cache')) > 0, 'the root counts ContentCache bytes');
    t.equal(Number(tagOf(root, 'clip.fetched.on_demand')) + Number(tagOf(root, 'clip.fetched.whole')), 0, 'and no registry bytes');
    t.ok(Number(tagOf(root, 'clip.image.layers.lazy')) >= 1, 'layers served lazily');
    const st = await status(b, image.ref);
    const read = st.layers.filter((l) => l.served.content_cache > 0);
    t.ok(read.length >= 1 && read.every((l) => l.mode === 'lazy' && l.fetched.content_cache > 0), `node B status: lazy from the ContentCache:\n${st.text}`);
    t.ok(st.layers.every((l) => l.fetched.on_demand + l.fetched.whole + l.fetched.background + l.fetched.index_build === 0), 'node B fetched nothing from the registry');
  });

  await t.test('node A warm: a new trace whose reads come from the disk', async (t) => {
    const before = Math.max(coldRoot, Date.now() * 1000 - 1);
    // A file of layer 1 the cold start did not read: the kernel has none of it cached, so the read
    // reaches the daemon, which has the whole layer on disk by now.
    const res = await a.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...a.c.runcArgs(), image.ref, `a-warm-${++seq}`, 'cat', '/data/hardlink-a.txt']);
    t.equal(res.stdout, 'shared by three names\n');
    const tr = await startTrace(jaeger, 'clip-a', { 'clip.source': 'disk', 'clip.cache.hit': 'true' }, image.ref, before);
    if (!tr) return void t.fail('no closed start trace of node A found by clip.source=disk in Jaeger');
    t.equal(roots(tr).length, 1, 'one clip.start root');
    t.ok(tr.spans.some((s) => s.operationName === PREPARE && parentOf(tr, s)?.operationName === 'clip.start'), "the container's Prepare is in the trace");
    t.ok(tiers(tr).some(([n, src]) => n === 'clip.read.disk' && src === 'disk'), `a read served by the disk: ${JSON.stringify(tiers(tr))}`);
    t.notOk(tiers(tr).some(([n]) => n === 'clip.read.registry' || n === 'clip.read.content_cache'), 'nothing but the disk');
    const summaries = tr.spans.filter((s) => s.operationName === 'clip.layer.summary' && Number(tagOf(s, 'clip.served.disk')) > 0);
    t.ok(summaries.length >= 1 && summaries.every((s) => tagOf(s, 'clip.layer.mode') === 'local'), 'the layers read say local');
    t.ok(ccRoot > 0, 'the ContentCache start came before');
  });

  await t.test('per image and layer metrics', async (t) => {
    const text = await (await fetch(b.metricsUrl)).text();
    t.match(text, new RegExp(`clip_layer_fetched_bytes_total\\{[^}]*via="content_cache"[^}]*\\} [1-9]`), 'node B: ContentCache bytes per layer');
    t.match(text, /clip_layer_lazy\{[^}]*image="[^"]+"[^}]*\} 1/, 'node B: a lazy layer');
    t.match(text, /clip_layer_time_to_first_read_seconds\{/, 'node B: time to first read per layer');
  });
}

const missing = jaegerMissingReason();
if (missing) {
  // Not a skip: the Jaeger build is part of `make deps`; without it this feature is untested.
  t.fail(`Jaeger is not built: ${missing}`);
} else {
  await run();
}
