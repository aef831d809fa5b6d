import t from 'tap';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { notFound, unavailable } from '../../src/errors/index.js';
import { DiskSpanSampler, exporterUrl, traceRpc, tracingEnabled, withSpan } from '../../src/telemetry/index.js';
import { childrenOf, inMemoryTracing, named } from './in-memory.js';

t.test('with tracing off, withSpan runs the function on a non-recording span and exports nothing', async (t) => {
  t.equal(tracingEnabled(), false);
  const got = await withSpan('x', {}, async (span) => (t.equal(span.isRecording(), false), 42));
  t.equal(got, 42);
  t.equal(trace.getActiveSpan(), undefined, 'no context was entered');
});

t.test('withSpan nests, records errors and ends every span', async (t) => {
  const exp = inMemoryTracing(t);
  await withSpan('outer', { a: 1 }, async () => {
    await withSpan('inner', { b: 'x' }, async () => undefined);
    await t.rejects(withSpan('failing', {}, async () => Promise.reject(unavailable('CLIP_REGISTRY_UNAVAILABLE', 'down'))));
  });
  const spans = exp.getFinishedSpans();
  const [outer] = named(spans, 'outer');
  t.ok(outer);
  t.same(childrenOf(spans, outer!).map((s) => s.name).sort(), ['failing', 'inner']);
  const [failing] = named(spans, 'failing');
  t.equal(failing!.status.code, SpanStatusCode.ERROR);
  t.match(failing!.status.message, /down/);
  t.equal(failing!.attributes['error.type'], 'CLIP_REGISTRY_UNAVAILABLE');
  t.equal(failing!.events[0]?.name, 'exception');
  t.equal(named(spans, 'inner')[0]!.status.code, SpanStatusCode.UNSET);
});

t.test('a root span with a link starts a new trace', async (t) => {
  const exp = inMemoryTracing(t);
  await withSpan('trigger', {}, async (trigger) => {
    await withSpan('background', {}, async () => undefined, { root: true, links: [{ context: trigger.spanContext() }] });
  });
  const [trigger] = named(exp.getFinishedSpans(), 'trigger');
  const [bg] = named(exp.getFinishedSpans(), 'background');
  t.not(bg!.spanContext().traceId, trigger!.spanContext().traceId);
  t.equal(bg!.parentSpanContext, undefined);
  t.equal(bg!.links[0]?.context.spanId, trigger!.spanContext().spanId);
});

t.test('traceRpc: server span with rpc.* attributes, a continued trace, and semconv error status', async (t) => {
  const exp = inMemoryTracing(t);
  const traceId = '0af7651916cd43dd8448eb211c80319c';
  const carrier = { traceparent: `00-${traceId}-b7ad6b7169203331-01` };
  await traceRpc('svc.S', 'Prepare', carrier, { 'clip.snapshot.key': 'k' }, async () => 'ok', () => 2);
  await t.rejects(traceRpc('svc.S', 'Stat', undefined, {}, async () => Promise.reject(notFound('CLIP_SNAPSHOT_NOT_FOUND', 'gone')), () => 5));
  await t.rejects(traceRpc('svc.S', 'Mounts', undefined, {}, async () => Promise.reject(unavailable('CLIP_REGISTRY_UNAVAILABLE', 'down')), () => 14));
  const [prep] = named(exp.getFinishedSpans(), 'svc.S/Prepare');
  t.equal(prep!.kind, 1 /* SERVER */);
  t.equal(prep!.spanContext().traceId, traceId, 'continues the caller trace');
  t.match(prep!.attributes, { 'rpc.system': 'grpc', 'rpc.service': 'svc.S', 'rpc.method': 'Prepare', 'rpc.grpc.status_code': 0, 'clip.snapshot.key': 'k' });
  const [stat] = named(exp.getFinishedSpans(), 'svc.S/Stat');
  t.equal(stat!.attributes['rpc.grpc.status_code'], 5);
  t.equal(stat!.status.code, SpanStatusCode.UNSET, 'NOT_FOUND is protocol, not a server error');
  const [mounts] = named(exp.getFinishedSpans(), 'svc.S/Mounts');
  t.equal(mounts!.status.code, SpanStatusCode.ERROR);
});

t.test('DiskSpanSampler: one span per layer per interval, skipped hits tallied onto the next', async (t) => {
  let now = 0;
  const s = new DiskSpanSampler(1000, () => now);
  t.same(s.take('a'), { reads: 0, bytes: 0 });
  t.equal(s.take('a'), undefined);
  s.skip('a', 10);
  s.skip('a', 5);
  t.same(s.take('b'), { reads: 0, bytes: 0 }, 'layers are independent');
  now = 1000;
  t.same(s.take('a'), { reads: 2, bytes: 15 });
  s.forget('a');
  t.same(s.take('a'), { reads: 0, bytes: 0 });
});

t.test('exporterUrl normalises per protocol', async (t) => {
  t.equal(exporterUrl('', 'grpc'), undefined);
  t.equal(exporterUrl('localhost:4317', 'grpc'), 'http://localhost:4317');
  t.equal(exporterUrl('http://jaeger:4318', 'http/protobuf'), 'http://jaeger:4318/v1/traces');
  t.equal(exporterUrl('https://c:4318/custom/path', 'http/json'), 'https://c:4318/custom/path');
});
