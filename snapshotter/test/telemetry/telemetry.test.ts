import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { trace } from '@opentelemetry/api';
import { recordBackgroundWait, recordFallback, recordRead, setMountedLayers, startTelemetry, tracingEnabled, withSpan } from '../../src/telemetry/index.js';
import { parseHostPort } from '../../src/telemetry/prometheus-server.js';

const off = { endpoint: '', protocol: 'http/json' as const, sampleRatio: 1, serviceName: 'clip-test', metricsAddress: '', env: {} };

t.test('off by default: nothing registered, no metrics endpoint', async (t) => {
  const tel = await startTelemetry(off);
  t.equal(tel.tracing, false);
  t.equal(tel.metricsUrl, undefined);
  t.equal(tracingEnabled(), false);
  await withSpan('x', {}, async (s) => t.equal(s.isRecording(), false));
  await tel.shutdown();
});

t.test('OTEL_SDK_DISABLED wins over a configured endpoint', async (t) => {
  const tel = await startTelemetry({ ...off, endpoint: 'http://127.0.0.1:1', env: { OTEL_SDK_DISABLED: 'true' } });
  t.equal(tel.tracing, false);
  await tel.shutdown();
});

t.test('an endpoint from OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on; shutdown flushes to the collector', async (t) => {
  const bodies: Array<{ path: string; type: string; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      bodies.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tel = await startTelemetry({ ...off, env: { OTEL_EXPORTER_OTLP_ENDPOINT: url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } });
  t.equal(tel.tracing, true);
  t.equal(tracingEnabled(), true);
  await withSpan('flushed-on-shutdown', {}, async () => undefined);
  await tel.shutdown();
  t.equal(tracingEnabled(), false);
  t.equal(trace.getActiveSpan(), undefined);
  t.equal(bodies.length, 1, 'one export request, sent by shutdown');
  t.equal(bodies[0]!.path, '/v1/traces');
  t.match(bodies[0]!.type, /json/);
  const parsed = JSON.parse(bodies[0]!.body) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: Array<{ name: string }> }> }> };
  const rs = parsed.resourceSpans[0]!;
  t.equal(rs.scopeSpans[0]!.spans[0]!.name, 'flushed-on-shutdown');
  const attr = (k: string) => rs.resource.attributes.find((a) => a.key === k)?.value.stringValue;
  t.equal(attr('service.name'), 'clip-test');
  t.ok(attr('service.version'), 'service.version from package.json');
  t.ok(attr('host.name'));
});

t.test('the Prometheus endpoint serves the instruments and stops at shutdown', async (t) => {
  const tel = await startTelemetry({ ...off, metricsAddress: '127.0.0.1:0' });
  t.match(tel.metricsUrl, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  recordRead('disk', 4096, 0.0001);
  recordFallback('index_missing');
  setMountedLayers(3);
  recordBackgroundWait('publish', 0.25, false);
  recordBackgroundWait('publish', 1, true);
  const text = await (await fetch(tel.metricsUrl!)).text();
  t.match(text, /clip_reads_total\{source="disk"\} 1/);
  t.match(text, /clip_read_bytes_total\{source="disk"\} 4096/);
  t.match(text, /clip_read_duration_seconds_bucket\{source="disk",le="0.0001"\} 1/);
  t.match(text, /clip_lazy_fallbacks_total\{reason="index_missing"\} 1/);
  t.match(text, /clip_mounted_layers 3/);
  t.match(text, /clip_background_waits_total\{stage="publish",outcome="idle"\} 1/);
  t.match(text, /clip_background_waits_total\{stage="publish",outcome="max_delay"\} 1/);
  t.match(text, /clip_background_wait_seconds_total\{stage="publish"\} 1\.25/);
  // The event-loop delay is sampled every 10 ms: wait (on events) until a scrape has samples.
  let delay = '';
  while (!/clip_event_loop_delay_seconds\{quantile="max"\} \d/.test(delay)) {
    await new Promise((r) => setImmediate(r));
    delay = await (await fetch(tel.metricsUrl!)).text();
  }
  t.match(delay, /clip_event_loop_delay_seconds\{quantile="0\.99"\} [\d.e-]+/, 'event-loop delay exported');
  t.equal((await fetch(tel.metricsUrl!.replace('/metrics', '/other'))).status, 404);
  await tel.shutdown();
  await t.rejects(fetch(tel.metricsUrl!), 'closed');
  recordRead('disk', 1, 0.1); // no provider: a no-op, not a crash
});

t.test('parseHostPort', async (t) => {
  t.same(parseHostPort('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
  t.same(parseHostPort(':9464'), { host: '', port: 9464 });
  t.same(parseHostPort('[::1]:9464'), { host: '::1', port: 9464 });
  t.throws(() => parseHostPort('nohost'), { name: 'ClipError' });
});
