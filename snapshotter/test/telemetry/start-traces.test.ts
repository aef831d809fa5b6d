import t from 'tap';
import { context } from '@opentelemetry/api';
import { StartTraces, traceRpc, withSpan } from '../../src/telemetry/index.js';
import { inMemoryTracing, named } from './in-memory.js';

const IMAGE = '127.0.0.1:5000/app:1';
const layerLabels = (chain: string) => ({ 'containerd.io/snapshot.ref': chain, 'containerd.io/snapshot/cri.image-ref': IMAGE, 'containerd.io/snapshot/cri.layer-digest': `sha256:${'a'.repeat(64)}` });

/** One RPC as the service layer runs it: a server span whose parent the start traces may give. */
const rpc = (starts: StartTraces, method: string, req: Record<string, unknown>, inner?: () => Promise<void>) =>
  traceRpc('svc', method, {}, {}, async () => inner?.(), () => 2, () => starts.rpcContext(method, req as never));

t.test('Prepare RPCs of an image, its container and its reads share one trace under clip.start', async (t) => {
  const exp = inMemoryTracing(t);
  const summaries: string[] = [];
  const starts = new StartTraces({
    idleMs: 60_000, maxMs: 60_000,
    hooks: {
      baseline: () => undefined,
      summarize: (diffId) => (summaries.push(diffId), { 'clip.layer.mode': 'lazy' }),
      summarizeImage: (layers) => ({ 'clip.image.layers.lazy': layers.length }),
    },
  });
  let image: string | undefined;
  await rpc(starts, 'Prepare', { key: 'extract-1 c1', parent: '', labels: layerLabels('c1') }, async () => {
    const tr = starts.active();
    image = tr?.image;
    tr?.addLayer('sha256:d1');
  });
  await rpc(starts, 'Stat', { key: 'c1' });
  await rpc(starts, 'Prepare', { key: 'extract-2 c2', parent: 'c1', labels: { 'containerd.io/snapshot.ref': 'c2' } });
  await rpc(starts, 'Prepare', { key: 'ctr-1', parent: 'c2', labels: {} });
  await rpc(starts, 'Mounts', { key: 'ctr-1' });
  await rpc(starts, 'List', {});
  const open = starts.openTrace(IMAGE)!;
  for (let i = 0; i < 3; i++) await context.with(open.readContext('sha256:d1'), () => withSpan('clip.read', {}, async () => undefined));
  starts.closeAll();

  t.equal(image, IMAGE, 'the mount saw its start trace');
  const spans = exp.getFinishedSpans();
  const [root] = named(spans, 'clip.start');
  t.ok(root, 'a clip.start root');
  t.equal(root!.attributes['clip.image.ref'], IMAGE);
  t.equal(root!.attributes['clip.image.layers.lazy'], 1, 'image answers from the hooks');
  const traceId = root!.spanContext().traceId;
  const joined = spans.filter((s) => s.spanContext().traceId === traceId).map((s) => s.name).sort();
  t.same(joined, ['clip.layer.summary', 'clip.read', 'clip.read', 'clip.read', 'clip.start', 'svc/Mounts', 'svc/Prepare', 'svc/Prepare', 'svc/Prepare', 'svc/Stat']);
  t.not(named(spans, 'svc/List')[0]!.spanContext().traceId, traceId, 'an RPC of no image stays a trace of its own');
  t.same(summaries, ['sha256:d1']);
  t.equal(typeof named(spans, 'clip.layer.summary')[0]!.attributes['clip.time_to_first_read_ms'], 'number');
});

t.test('a caller-sent trace context wins; a closed start trace is not joined', async (t) => {
  const exp = inMemoryTracing(t);
  const starts = new StartTraces({ idleMs: 60_000, maxMs: 60_000 });
  await rpc(starts, 'Prepare', { key: 'k1', parent: '', labels: layerLabels('c1') });
  const first = starts.openTrace(IMAGE)!;
  starts.closeAll();
  t.equal(starts.openTrace(IMAGE), undefined);
  await rpc(starts, 'Prepare', { key: 'ctr', parent: 'c1', labels: {} });
  const second = starts.openTrace(IMAGE)!;
  t.not(second, first, 'the next container start opens a new start trace');
  await traceRpc('svc', 'Prepare', { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` }, {}, async () => undefined, () => 2, () => starts.rpcContext('Prepare', { key: 'x', parent: 'c1' } as never));
  starts.closeAll();
  const caller = exp.getFinishedSpans().find((s) => s.spanContext().traceId === '1'.repeat(32));
  t.ok(caller, 'the RPC continued the caller\'s trace');
  t.equal(named(exp.getFinishedSpans(), 'clip.start').length, 2);
});

t.test('a start trace closes by itself after idleMs', async (t) => {
  const exp = inMemoryTracing(t);
  const starts = new StartTraces({ idleMs: 20, maxMs: 60_000 });
  await rpc(starts, 'Prepare', { key: 'k1', parent: '', labels: layerLabels('c1') });
  const until = Date.now() + 10_000;
  while (named(exp.getFinishedSpans(), 'clip.start').length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  t.equal(named(exp.getFinishedSpans(), 'clip.start').length, 1);
  t.equal(starts.openTrace(IMAGE), undefined);
});
