import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { isKind, findClipError, type ErrorKind } from '../../src/errors/index.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { faultServer, type FaultServer } from './fault-server.js';

const BLOB = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(100));
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const BLOB_PATH = `/v2/lib/app/blobs/${DIGEST}`;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function rejectsKind(t: Test, p: Promise<unknown>, kind: ErrorKind, text = ''): Promise<Error> {
  const err = (await p.then(() => undefined, (e: unknown) => e)) as Error;
  t.ok(err !== undefined && isKind(err, kind), `rejects with ${kind}: ${String(err?.message)}`);
  if (text) t.match(String(err?.message), text);
  return err;
}

async function setup(t: Test, handler: Parameters<typeof faultServer>[0], opts: RegistryClientOptions = {}): Promise<{ srv: FaultServer; client: RegistryClient; repo: string }> {
  const srv = await faultServer(handler);
  const client = new RegistryClient({ retryBaseDelayMs: 5, maxRetries: 2, timeoutMs: 2_000, ...opts });
  t.teardown(async () => {
    await client.close();
    await srv.close();
  });
  return { srv, client, repo: `${srv.host}/lib/app` };
}

t.test('a 500 then a 200 is retried', async (t) => {
  const { srv, client, repo } = await setup(t, (_req, res, n) => {
    if (n === 1) return void res.writeHead(500).end();
    res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
  });
  const blob = await client.fetchBlob(repo, DIGEST);
  t.ok((await collect(blob.stream)).equals(BLOB));
  t.equal(srv.requests.length, 2);
});

t.test('persistent 5xx gives up after the bounded retries with unavailable', async (t) => {
  const { srv, client, repo } = await setup(t, (_req, res) => void res.writeHead(503).end());
  await rejectsKind(t, client.fetchBlob(repo, DIGEST), 'unavailable', srv.host);
  t.equal(srv.requests.length, 3, 'first attempt + 2 retries');
});

t.test('429 honours Retry-After', async (t) => {
  const slept: number[] = [];
  const { srv, client, repo } = await setup(t, (_req, res, n) => {
    if (n === 1) return void res.writeHead(429, { 'retry-after': '1' }).end();
    t.same(slept, [1000], 'the retry was sent only after waiting the Retry-After second');
    res.writeHead(200).end(BLOB);
  }, { sleep: async (ms) => void slept.push(ms) });
  t.ok((await client.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.same(slept, [1000], 'one wait, of exactly Retry-After');
  t.equal(srv.requests.length, 2);
});

t.test('a Retry-After beyond maxRetryAfterMs is cut to it; backoff without one stays under the cap', async (t) => {
  const slept: number[] = [];
  const { srv, client, repo } = await setup(t, (_req, res, n) => {
    if (n === 1) return void res.writeHead(429, { 'retry-after': '3600' }).end();
    if (n === 2) return void res.writeHead(503).end();
    res.writeHead(200).end(BLOB);
  }, { sleep: async (ms) => void slept.push(ms), maxRetryAfterMs: 250, retryBaseDelayMs: 40 });
  t.ok((await client.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(srv.requests.length, 3);
  t.equal(slept[0], 250, 'Retry-After: 3600 waited only maxRetryAfterMs');
  // Second attempt: exponential backoff base 40 × 2¹ = 80 ms, jittered into [40, 80].
  t.ok(slept[1]! >= 40 && slept[1]! <= 80, `backoff after a 503: ${slept[1]} ms`);
});

t.test('a connection reset is retried; a dead host is unavailable', async (t) => {
  const { srv, client, repo } = await setup(t, (req, res, n) => {
    if (n === 1) return void req.socket.destroy();
    res.writeHead(200).end(BLOB);
  });
  t.ok((await client.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(srv.requests.length, 2);
  const dead = new RegistryClient({ retryBaseDelayMs: 1, maxRetries: 1 });
  t.teardown(() => dead.close());
  await rejectsKind(t, dead.fetchBlobBytes('127.0.0.1:1/lib/app', DIGEST), 'unavailable', '127.0.0.1:1');
});

t.test('a redirect to another host drops Authorization', async (t) => {
  const storage = await faultServer((_req, res) => void res.writeHead(200).end(BLOB));
  t.teardown(() => storage.close());
  const { srv, client, repo } = await setup(
    t,
    (req, res) => {
      if (!req.headers.authorization) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
      res.writeHead(307, { location: `http://localhost:${storage.host.split(':')[1]}/blob?sig=1` }).end();
    },
    { credentials: { '127.0.0.1': { type: 'basic', username: 'u', password: 'p' } } },
  );
  // credentials are keyed by host:port
  const withPort = new RegistryClient({ credentials: { [srv.host]: { type: 'basic', username: 'u', password: 'p' } } });
  t.teardown(() => withPort.close());
  t.ok((await withPort.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(srv.requests.at(-1)?.headers.authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  t.equal(storage.requests.length, 1);
  t.equal(storage.requests[0]?.headers.authorization, undefined, 'blob storage never sees the credentials');
  t.equal(storage.requests[0]?.url, '/blob?sig=1');
  await rejectsKind(t, client.fetchBlobBytes(repo, DIGEST), 'failed_precondition', 'unauthorized');
});

t.test('Range: checked Content-Range; an ignored Range fails clearly', async (t) => {
  const { client, repo } = await setup(t, (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    if (req.url?.includes('ignore') || !m) return void res.writeHead(200).end(BLOB);
    const [s, e] = [Number(m[1]), Number(m[2])];
    const shift = req.url?.includes('wrong') ? 1 : 0;
    res.writeHead(206, { 'content-range': `bytes ${s + shift}-${e + shift}/${BLOB.length}` }).end(BLOB.subarray(s + shift, e + shift + 1));
  });
  const part = await client.fetchBlob(repo, DIGEST, { range: { offset: 10, length: 20 } });
  t.same({ offset: part.offset, length: part.length, size: part.size }, { offset: 10, length: 20, size: BLOB.length });
  t.ok((await collect(part.stream)).equals(BLOB.subarray(10, 30)));
  const ignoring = `${repo.split('/')[0]}/ignore/app`;
  const e1 = await rejectsKind(t, client.fetchBlob(ignoring, DIGEST, { range: { offset: 10, length: 20 } }), 'failed_precondition', 'ignored the Range');
  t.equal(findClipError(e1)?.code, 'CLIP_REGISTRY_RANGE_UNSUPPORTED');
  await rejectsKind(t, client.fetchBlob(`${repo.split('/')[0]}/wrong/app`, DIGEST, { range: { offset: 10, length: 20 } }), 'failed_precondition', 'Content-Range');
  await rejectsKind(t, client.fetchBlob(repo, DIGEST, { range: { offset: -1, length: 20 } }), 'invalid_argument');
});

t.test('wrong content is data_corrupt, for blobs and manifests', async (t) => {
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'a', digest: DIGEST, size: 1 }, layers: [] }));
  const mdigest = `sha256:${createHash('sha256').update(manifest).digest('hex')}`;
  const { client, repo } = await setup(t, (req, res) => {
    if (req.url?.includes('/manifests/')) {
      return void res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(req.url.endsWith('good') || req.url.endsWith(mdigest) ? manifest : Buffer.concat([manifest, Buffer.from(' ')]));
    }
    res.writeHead(200).end(Buffer.from(BLOB.toString().toUpperCase()));
  });
  const blob = await client.fetchBlob(repo, DIGEST);
  const err = await rejectsKind(t, collect(blob.stream), 'data_corrupt', DIGEST);
  t.match(err.message, repo.split('/')[0]!);
  await rejectsKind(t, client.fetchBlobBytes(repo, DIGEST), 'data_corrupt');
  t.equal((await client.fetchManifest(repo, mdigest)).descriptor.digest, mdigest);
  const wrongDigest = `sha256:${'a'.repeat(64)}`;
  await rejectsKind(t, client.fetchManifest(repo, wrongDigest), 'data_corrupt', wrongDigest);
  const byTag = await client.fetchManifest(repo, 'good');
  t.equal(byTag.type, 'manifest');
  t.equal(byTag.descriptor.digest, mdigest, 'a tag resolves to the hash of the bytes');
});

t.test('bearer: token from the realm, cached per scope, refreshed after a 401', async (t) => {
  let valid = 'tok-1';
  let issued = 0;
  const tokens = await faultServer((req, res) => {
    if (req.method === 'POST') {
      let form = '';
      req.on('data', (c: Buffer) => (form += c.toString()));
      req.on('end', () => {
        const f = new URLSearchParams(form);
        const ok = f.get('grant_type') === 'refresh_token' && f.get('refresh_token') === 'idt' && f.get('scope') === 'repository:lib/app:pull';
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: valid }));
      });
      return;
    }
    const auth = req.headers.authorization;
    if (auth !== `Basic ${Buffer.from('bob:pw').toString('base64')}`) return void res.writeHead(401).end();
    issued++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `tok-${issued}`, expires_in: 300 }));
  });
  t.teardown(() => tokens.close());
  const { srv, client, repo } = await setup(
    t,
    (req, res) => {
      if (req.headers.authorization !== `Bearer ${valid}`) {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="test-registry",scope="repository:lib/app:pull"` }).end();
      }
      res.writeHead(200).end(BLOB);
    },
  );
  const authed = new RegistryClient({ retryBaseDelayMs: 1, credentials: { [srv.host]: { type: 'basic', username: 'bob', password: 'pw' } } });
  t.teardown(() => authed.close());
  t.ok((await authed.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.ok((await authed.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(issued, 1, 'the token is cached');
  const tokenUrl = new URL(tokens.requests[0]?.url ?? '', tokens.url);
  t.equal(tokenUrl.searchParams.get('service'), 'test-registry');
  t.same(tokenUrl.searchParams.getAll('scope'), ['repository:lib/app:pull']);
  valid = 'tok-2';
  t.ok((await authed.fetchBlobBytes(repo, DIGEST)).equals(BLOB), 'a rejected token is refreshed');
  t.equal(issued, 2);
  await rejectsKind(t, client.fetchBlobBytes(repo, DIGEST), 'failed_precondition', 'anonymous access refused');
  const viaIdentity = new RegistryClient({ credentials: { [srv.host]: { type: 'identity_token', username: '<token>', token: 'idt' } } });
  t.teardown(() => viaIdentity.close());
  t.ok((await viaIdentity.fetchBlobBytes(repo, DIGEST)).equals(BLOB), 'identity token: OAuth2 refresh_token grant');
});

t.test('timeouts: no headers, or a stalled body, never hang', async (t) => {
  const ctx = await setup(
    t,
    (req, res) => {
      if (req.url?.includes('/stall/')) {
        res.writeHead(200, { 'content-length': BLOB.length });
        res.write(BLOB.subarray(0, 10));
        return;
      }
      // never answer
    },
    { timeoutMs: 300, maxRetries: 1 },
  );
  const { srv, client, repo } = ctx;
  await rejectsKind(t, client.fetchBlob(repo, DIGEST), 'unavailable', 'HEADERS_TIMEOUT');
  t.equal(srv.requests.filter((r) => !r.url?.includes('/stall/')).length, 2, 'the headers timeout ended both attempts (first + 1 retry)');
  // The stalled body gets a client of its own with a longer deadline: its headers come at once,
  // but a loaded machine (CI) may take longer than 300 ms to deliver them.
  const patient = new RegistryClient({ retryBaseDelayMs: 5, maxRetries: 0, timeoutMs: 2_000 });
  t.teardown(() => patient.close());
  const stalled = await patient.fetchBlob(`${repo.split('/')[0]}/stall/app`, DIGEST);
  await rejectsKind(t, collect(stalled.stream), 'unavailable', 'download failed');
});
