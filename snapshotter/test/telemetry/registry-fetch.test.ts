import t from 'tap';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanStatusCode } from '@opentelemetry/api';
import { RegistryClient } from '../../src/registry/index.js';
import { inMemoryMetrics, inMemoryTracing, named } from './in-memory.js';

const blob = Buffer.from('hello layer bytes '.repeat(1000));
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

/** A registry that serves one blob, 404 for anything else. */
async function tinyRegistry(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const server = createServer((req, res) => {
    if (req.url === `/v2/app/blobs/${digest}`) {
      res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream' });
      res.end(req.method === 'HEAD' ? undefined : blob);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ errors: [{ code: 'BLOB_UNKNOWN', message: 'blob unknown' }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

t.test('fetch_blob span: HTTP semconv attributes, ends with the body, counts the fetch', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const host = await tinyRegistry(t);
  const client = new RegistryClient({ plainHttp: true, maxRetries: 0 });
  t.teardown(() => client.close());
  const b = await client.fetchBlob(`${host}/app`, digest);
  t.equal(named(exp.getFinishedSpans(), 'clip.registry.fetch_blob').length, 0, 'still open while the body streams');
  const chunks: Buffer[] = [];
  for await (const c of b.stream) chunks.push(c as Buffer);
  t.same(Buffer.concat(chunks), blob);
  const [span] = named(exp.getFinishedSpans(), 'clip.registry.fetch_blob');
  t.ok(span);
  t.equal(span!.kind, 2 /* CLIENT */);
  t.match(span!.attributes, {
    'http.request.method': 'GET',
    'url.full': `http://${host}/v2/app/blobs/${digest}`,
    'server.address': '127.0.0.1',
    'server.port': Number(host.split(':')[1]),
    'http.response.status_code': 200,
    'http.response.body.size': blob.length,
    'clip.blob.digest': digest,
  });
  t.equal(span!.status.code, SpanStatusCode.UNSET);
  t.equal(await metrics.value('clip_registry_fetches', { outcome: 'ok' }), 1);
  t.equal(await metrics.value('clip_registry_fetch_bytes'), blob.length);
});

t.test('fetch_blob span: a 404 is an error with the status code', async (t) => {
  const exp = inMemoryTracing(t);
  const metrics = inMemoryMetrics(t);
  const host = await tinyRegistry(t);
  const client = new RegistryClient({ plainHttp: true, maxRetries: 0 });
  t.teardown(() => client.close());
  const missing = `sha256:${'0'.repeat(64)}`;
  await t.rejects(client.fetchBlob(`${host}/app`, missing), { name: 'ClipError' });
  const [span] = named(exp.getFinishedSpans(), 'clip.registry.fetch_blob');
  t.equal(span!.attributes['http.response.status_code'], 404);
  t.equal(span!.status.code, SpanStatusCode.ERROR);
  t.equal(span!.events[0]?.name, 'exception');
  t.equal(await metrics.value('clip_registry_fetches', { outcome: 'error' }), 1);
});

t.test('fetch_blob span: no registry listening → error, no status code', async (t) => {
  const exp = inMemoryTracing(t);
  const client = new RegistryClient({ plainHttp: true, maxRetries: 0, connectTimeoutMs: 1000 });
  t.teardown(() => client.close());
  await t.rejects(client.fetchBlob('127.0.0.1:1/app', digest), { name: 'ClipError' });
  const [span] = named(exp.getFinishedSpans(), 'clip.registry.fetch_blob');
  t.equal(span!.status.code, SpanStatusCode.ERROR);
  t.equal(span!.attributes['http.response.status_code'], undefined);
});
