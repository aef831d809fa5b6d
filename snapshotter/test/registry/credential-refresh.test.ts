/**
 * Expiry and refresh: bearer tokens renewed before `expires_in` runs out and after a 401 in the
 * middle of a layer's range reads, credentials re-read when their docker config changes, every
 * source tried before a request fails with CLIP_REGISTRY_CREDENTIALS_REFUSED.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { findClipError } from '../../src/errors/index.js';
import { ChainedCredentials, RegistryClient, StaticCredentials, type CredentialStore } from '../../src/registry/index.js';
import { faultServer } from './fault-server.js';

const BLOB = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz'.repeat(100));
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(() => 'resolved', (err: unknown) => findClipError(err)?.code ?? String(err));
}

/** A token server that issues `tok-N` with `expiresIn` to user bob (password `pw`), and a registry that accepts only the newest token. */
async function tokenRegistry(t: Test, expiresIn: number) {
  const state = { issued: 0, valid: '', seen: [] as string[] };
  const tokens = await faultServer((req, res) => {
    if (req.headers.authorization !== basic('bob', 'pw')) return void res.writeHead(401).end();
    state.issued++;
    state.valid = `tok-${state.issued}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: state.valid, expires_in: expiresIn }));
  });
  const registry = await faultServer((req, res) => {
    const auth = req.headers.authorization ?? '';
    state.seen.push(auth);
    if (auth !== `Bearer ${state.valid}` || state.valid === '') {
      return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="reg"` }).end();
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(String(req.headers.range ?? ''));
    if (!m) return void res.writeHead(200).end(BLOB);
    const [s, e] = [Number(m[1]), Number(m[2])];
    res.writeHead(206, { 'content-range': `bytes ${s}-${e}/${BLOB.length}` }).end(BLOB.subarray(s, e + 1));
  });
  t.teardown(async () => {
    await tokens.close();
    await registry.close();
  });
  return { state, tokens, registry, repo: `${registry.host}/lib/app` };
}

t.test('a bearer token is renewed before expires_in runs out, without a 401 first', async (t) => {
  const { state, registry, repo } = await tokenRegistry(t, 10);
  let now = 1_000_000;
  const client = new RegistryClient({ retryBaseDelayMs: 1, nowMs: () => now, credentials: { [registry.host]: { type: 'basic', username: 'bob', password: 'pw' } } });
  t.teardown(() => client.close());
  t.ok((await client.fetchBlobBytes(repo, DIGEST)).equals(BLOB));
  t.equal(state.issued, 1);
  now += 5_000;
  await client.fetchBlobBytes(repo, DIGEST);
  t.equal(state.issued, 1, 'half-way through its life the token is reused');
  const before = state.seen.length;
  now += 4_500; // 9.5 s of 10: inside the renewal margin
  await client.fetchBlobBytes(repo, DIGEST);
  t.equal(state.issued, 2, 'renewed before it expired');
  t.same(state.seen.slice(before), ['Bearer tok-2'], 'the renewed token went out at once: no request was refused');
});

t.test('a range read refused with 401 mid-layer re-authenticates once and continues', async (t) => {
  const { state, registry, repo } = await tokenRegistry(t, 3600);
  const client = new RegistryClient({ retryBaseDelayMs: 1, credentials: { [registry.host]: { type: 'basic', username: 'bob', password: 'pw' } } });
  t.teardown(() => client.close());
  const first = await client.fetchBlob(repo, DIGEST, { range: { offset: 0, length: 100 } });
  t.ok((await collect(first.stream)).equals(BLOB.subarray(0, 100)));
  state.valid = 'revoked-by-the-registry'; // the registry stops accepting tok-1 before it expires
  state.issued = 1;
  const before = state.seen.length;
  const second = await client.fetchBlob(repo, DIGEST, { range: { offset: 100, length: 100 } });
  t.ok((await collect(second.stream)).equals(BLOB.subarray(100, 200)), 'the next range arrived');
  t.same(state.seen.slice(before), ['Bearer tok-1', 'Bearer tok-2'], 'one 401, one new token, one retry');
});

t.test('Basic: the next source is tried when one is refused; all refused is CLIP_REGISTRY_CREDENTIALS_REFUSED', async (t) => {
  let password = 'right';
  const seen: string[] = [];
  const srv = await faultServer((req, res) => {
    seen.push(req.headers.authorization ?? '');
    if (req.headers.authorization !== basic('bob', password)) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(200).end(BLOB);
  });
  t.teardown(() => srv.close());
  const sources: CredentialStore = new ChainedCredentials([
    new StaticCredentials({ [srv.host]: { type: 'basic', username: 'bob', password: 'stale' } }),
    new StaticCredentials({ [srv.host]: { type: 'basic', username: 'bob', password: 'right' } }),
  ]);
  const client = new RegistryClient({ retryBaseDelayMs: 1, credentials: sources });
  t.teardown(() => client.close());
  t.ok((await client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST)).equals(BLOB));
  t.same(seen, ['', basic('bob', 'stale'), basic('bob', 'right')], 'challenge, first source refused, second accepted');
  seen.length = 0;
  await client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST);
  t.same(seen, [basic('bob', 'right')], 'the refused source is skipped afterwards');
  password = 'rotated';
  seen.length = 0;
  t.equal(await codeOf(client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST)), 'CLIP_REGISTRY_CREDENTIALS_REFUSED');
  t.ok(seen.length <= 4, `a bounded number of attempts (${seen.length}), no loop`);
  const err = await client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST).catch((e: unknown) => e as Error);
  t.notMatch(String((err as Error).message), /stale|right|rotated/, 'no secret in the message');
});

t.test('a docker config.json is re-read when it changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-dockercfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'config.json');
  const srv = await faultServer((req, res) => {
    if (req.headers.authorization !== basic('bob', 'new')) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(200).end(BLOB);
  });
  t.teardown(() => srv.close());
  const write = (password: string, mtimeS: number): void => {
    writeFileSync(path, JSON.stringify({ auths: { [srv.host]: { auth: Buffer.from(`bob:${password}`).toString('base64') } } }));
    utimesSync(path, mtimeS, mtimeS);
  };
  write('old', 1_000_000);
  const client = new RegistryClient({ retryBaseDelayMs: 1, dockerConfig: path });
  t.teardown(() => client.close());
  t.equal(await codeOf(client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST)), 'CLIP_REGISTRY_CREDENTIALS_REFUSED', 'the old password is refused');
  write('new', 1_000_100);
  t.ok((await client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST)).equals(BLOB), 'the rotated password is used without a restart');
});

t.test('a token server refusing every source fails clearly; no credentials at all is UNAUTHORIZED', async (t) => {
  const tokens = await faultServer((_req, res) => void res.writeHead(401).end());
  const registry = await faultServer((_req, res) => void res.writeHead(401, { 'www-authenticate': `Bearer realm="${tokens.url}/token",service="reg"` }).end());
  t.teardown(async () => {
    await tokens.close();
    await registry.close();
  });
  const withCreds = new RegistryClient({ retryBaseDelayMs: 1, credentials: { [registry.host]: { type: 'basic', username: 'bob', password: 'pw' } } });
  const anonymous = new RegistryClient({ retryBaseDelayMs: 1 });
  t.teardown(async () => {
    await withCreds.close();
    await anonymous.close();
  });
  t.equal(await codeOf(withCreds.fetchBlobBytes(`${registry.host}/lib/app`, DIGEST)), 'CLIP_REGISTRY_CREDENTIALS_REFUSED');
  t.equal(await codeOf(anonymous.fetchBlobBytes(`${registry.host}/lib/app`, DIGEST)), 'CLIP_REGISTRY_UNAUTHORIZED');
  t.ok(tokens.requests.length <= 4, `bounded token requests (${tokens.requests.length})`);
});

t.test('credentials are looked up per repository', async (t) => {
  const asked: Array<[string, string | undefined]> = [];
  const store: CredentialStore = {
    get: async (host, repository) => {
      asked.push([host, repository]);
      return repository === 'lib/app' ? { type: 'basic', username: 'bob', password: 'pw' } : undefined;
    },
  };
  const srv = await faultServer((req, res) => {
    if (req.headers.authorization !== basic('bob', 'pw')) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(200).end(BLOB);
  });
  t.teardown(() => srv.close());
  const client = new RegistryClient({ retryBaseDelayMs: 1, credentials: store });
  t.teardown(() => client.close());
  t.ok((await client.fetchBlobBytes(`${srv.host}/lib/app`, DIGEST)).equals(BLOB));
  t.equal(await codeOf(client.fetchBlobBytes(`${srv.host}/other/repo`, DIGEST)), 'CLIP_REGISTRY_UNAUTHORIZED', 'another repository does not get them');
  t.ok(asked.some(([h, r]) => h === srv.host && r === 'lib/app'));
});
