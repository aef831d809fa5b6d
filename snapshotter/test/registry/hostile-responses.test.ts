/**
 * Issue 12: registry responses are untrusted beyond what a digest covers. A Range body is held to
 * the length asked for, an oversized manifest is refused from its Content-Length before it is
 * read, and hosts.toml headers (which may be credentials) never follow a redirect to another origin.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { findClipError } from '../../src/errors/index.js';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { faultServer, type FaultServer } from './fault-server.js';

const BLOB = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(100));
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  return err === undefined ? 'resolved' : findClipError(err)?.code ?? `not a ClipError: ${String(err)}`;
}

async function setup(t: Test, handler: Parameters<typeof faultServer>[0], opts: RegistryClientOptions = {}): Promise<{ srv: FaultServer; client: RegistryClient; repo: string }> {
  const srv = await faultServer(handler);
  const client = new RegistryClient({ retryBaseDelayMs: 5, maxRetries: 0, timeoutMs: 5_000, ...opts });
  t.teardown(async () => {
    await client.close();
    await srv.close();
  });
  return { srv, client, repo: `${srv.host}/lib/app` };
}

t.test('a 206 body longer than the range fails as soon as the surplus arrives', async (t) => {
  let surplusWritten = 0;
  const { client, repo } = await setup(t, (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const [s, e] = [Number(m?.[1]), Number(m?.[2])];
    // No Content-Length (chunked): the body is whatever the server sends, here far more than asked.
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${BLOB.length}` });
    res.write(BLOB.subarray(s, e + 1));
    const more = (): void => {
      if (res.destroyed || surplusWritten >= 64 << 20) return void res.end();
      surplusWritten += 64 << 10;
      if (res.write(Buffer.alloc(64 << 10, 1))) setImmediate(more);
      else res.once('drain', more);
    };
    more();
  });
  const part = await client.fetchBlob(repo, DIGEST, { range: { offset: 10, length: 20 } });
  t.equal(await codeOf(collect(part.stream)), 'CLIP_REGISTRY_BODY_TOO_LONG');
  t.ok(surplusWritten < 64 << 20, `stopped reading long before the 64 MiB the server offered (${surplusWritten} bytes written)`);
});

t.test('a 206 whose Content-Length disagrees with Content-Range is refused before its body is read', async (t) => {
  const { client, repo } = await setup(t, (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const [s, e] = [Number(m?.[1]), Number(m?.[2])];
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${BLOB.length}`, 'content-length': String(BLOB.length) }).end(BLOB);
  });
  t.equal(await codeOf(client.fetchBlob(repo, DIGEST, { range: { offset: 10, length: 20 } })), 'CLIP_REGISTRY_BODY_TOO_LONG');
});

t.test('a 206 body shorter than its Content-Range fails instead of handing on a short range', async (t) => {
  const { client, repo } = await setup(t, (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const [s, e] = [Number(m?.[1]), Number(m?.[2])];
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${BLOB.length}` }).end(BLOB.subarray(s, e - 4));
  });
  const part = await client.fetchBlob(repo, DIGEST, { range: { offset: 10, length: 20 } });
  t.equal(await codeOf(collect(part.stream)), 'CLIP_REGISTRY_UNAVAILABLE');
});

t.test('an exact 206 passes unchanged', async (t) => {
  const { client, repo } = await setup(t, (req, res) => {
    const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
    const [s, e] = [Number(m?.[1]), Number(m?.[2])];
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${BLOB.length}`, 'content-length': String(e - s + 1) }).end(BLOB.subarray(s, e + 1));
  });
  const part = await client.fetchBlob(repo, DIGEST, { range: { offset: 100, length: 1000 } });
  t.ok((await collect(part.stream)).equals(BLOB.subarray(100, 1100)));
});

t.test('a manifest whose Content-Length is over the limit is refused without reading it', async (t) => {
  const { client, repo } = await setup(t, (_req, res) => {
    // Headers promise 1 GiB; the body never comes. Reading it would wait, buffering would grow.
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': String(1 << 30) });
    res.write('{');
  });
  t.equal(await codeOf(client.fetchManifest(repo, 'latest')), 'CLIP_REGISTRY_BODY_TOO_LONG');
});

t.test('hosts.toml headers do not follow a redirect to another origin; same-origin hops keep them', async (t) => {
  const storage = await faultServer((_req, res) => void res.writeHead(200).end(BLOB));
  t.teardown(() => storage.close());
  const dir = await mkdtemp(join(tmpdir(), 'clip-hosts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const { srv, client, repo } = await setup(t, (req, res) => {
    if (req.url?.startsWith('/v2/lib/app/blobs/')) return void res.writeHead(307, { location: '/hop' }).end();
    res.writeHead(307, { location: `http://localhost:${storage.host.split(':')[1]}/blob?sig=1` }).end();
  }, { configPath: dir });
  await mkdir(join(dir, srv.host), { recursive: true });
  await writeFile(join(dir, srv.host, 'hosts.toml'), `server = "http://${srv.host}"\n[header]\nx-registry-token = "s3cret"\n`);
  t.ok((await client.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(srv.requests.length, 2, 'registry hop, then its same-origin redirect');
  t.equal(srv.requests[0]?.headers['x-registry-token'], 's3cret', 'the registry gets its configured header');
  t.equal(srv.requests[1]?.headers['x-registry-token'], 's3cret', 'a same-origin hop keeps it');
  t.equal(storage.requests.length, 1);
  t.equal(storage.requests[0]?.headers['x-registry-token'], undefined, 'blob storage on another origin never sees it');
});
