import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { findClipError } from '../../src/errors/index.js';
import { RegistryClient } from '../../src/registry/index.js';
import { probeClientCertificate } from '../../src/registry/client-certificates.js';
import { CLIENT_CERT, CLIENT_KEY, OTHER_CLIENT_CERT, OTHER_CLIENT_KEY, SERVER_CERT, SERVER_KEY, TEST_CA } from './test-pki.js';

const BLOB = Buffer.from('served over mutual TLS\n');
const DIGEST = `sha256:${createHash('sha256').update(BLOB).digest('hex')}`;

async function listen(t: Test, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function hostsDir(t: Test, host: string, toml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-tls-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, host));
  await writeFile(join(dir, 'ca.crt'), TEST_CA);
  await writeFile(join(dir, 'client.crt'), CLIENT_CERT);
  await writeFile(join(dir, 'client.key'), CLIENT_KEY);
  await writeFile(join(dir, 'other.pem'), OTHER_CLIENT_CERT + OTHER_CLIENT_KEY);
  await writeFile(join(dir, host, 'hosts.toml'), toml.replaceAll('DIR', dir));
  return dir;
}

t.test('mTLS: the hosts.toml client certificate is presented; without it the handshake fails', async (t) => {
  const peers: string[] = [];
  const server = createServer({ cert: SERVER_CERT, key: SERVER_KEY, ca: TEST_CA, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    peers.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? ''));
    res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
  });
  const host = await listen(t, server);
  const withCert = await hostsDir(t, host, `server = "https://${host}"\nca = "DIR/ca.crt"\nclient = [["DIR/client.crt", "DIR/client.key"]]\n`);
  const client = new RegistryClient({ configPath: withCert, maxRetries: 0, timeoutMs: 5_000 });
  t.teardown(() => client.close());
  t.ok((await client.fetchBlobBytes(`${host}/lib/app`, DIGEST)).equals(BLOB), 'blob fetched over mTLS');
  t.same(peers, ['clip-unit-client'], 'the server saw our client certificate');

  const noCert = await hostsDir(t, host, `server = "https://${host}"\nca = "DIR/ca.crt"\n`);
  const bare = new RegistryClient({ configPath: noCert, maxRetries: 0, timeoutMs: 5_000 });
  t.teardown(() => bare.close());
  const err = await bare.fetchBlobBytes(`${host}/lib/app`, DIGEST).then(() => undefined, (e: unknown) => e);
  t.equal(findClipError(err)?.kind, 'unavailable', `no client certificate: ${String((err as Error)?.message)}`);
  t.equal(peers.length, 1, 'no request got through without the certificate');

  const noCa = await hostsDir(t, host, `server = "https://${host}"\nclient = [["DIR/client.crt", "DIR/client.key"]]\n`);
  const untrusting = new RegistryClient({ configPath: noCa, maxRetries: 0, timeoutMs: 5_000 });
  t.teardown(() => untrusting.close());
  const err2 = await untrusting.fetchBlobBytes(`${host}/lib/app`, DIGEST).then(() => undefined, (e: unknown) => e);
  t.match(String((err2 as Error)?.message), /certificate/, 'a private CA not in hosts.toml is not trusted');
});

t.test('a token realm on another host is reached with the registry host\'s CA and client certificate', async (t) => {
  const tlsOpts = { cert: SERVER_CERT, key: SERVER_KEY, ca: TEST_CA, requestCert: true, rejectUnauthorized: true };
  const tokenServer = createServer(tlsOpts, (req, res) => {
    t.equal(req.headers.authorization, `Basic ${Buffer.from('user:pw').toString('base64')}`, 'the token request carries the basic credential');
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-1', expires_in: 300 }));
  });
  const realmHost = await listen(t, tokenServer);
  const registry = createServer(tlsOpts, (req, res) => {
    if (req.headers.authorization !== 'Bearer tok-1') {
      return void res.writeHead(401, { 'www-authenticate': `Bearer realm="https://${realmHost}/token",service="reg"` }).end();
    }
    res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
  });
  const host = await listen(t, registry);
  const dir = await hostsDir(t, host, `server = "https://${host}"\nca = "DIR/ca.crt"\nclient = [["DIR/client.crt", "DIR/client.key"]]\n`);
  const client = new RegistryClient({ configPath: dir, credentials: { [host]: { type: 'basic', username: 'user', password: 'pw' } }, maxRetries: 0, timeoutMs: 5_000 });
  t.teardown(() => client.close());
  t.ok((await client.fetchBlobBytes(`${host}/lib/app`, DIGEST)).equals(BLOB), 'bearer token from a private-CA, mTLS token service');
});

/**
 * An mTLS blob server trusting client certificates from `ca`, and a client whose hosts.toml lists
 * `client`; `peers` are the certificate names its GETs came with (the chooser's probes are HEADs).
 */
async function severalPairs(t: Test, ca: string[], client: string, maxVersion: 'TLSv1.3' | 'TLSv1.2' = 'TLSv1.3'): Promise<{ host: string; peers: string[]; fetch: () => Promise<Buffer> }> {
  const peers: string[] = [];
  const server = createServer({ cert: SERVER_CERT, key: SERVER_KEY, ca, requestCert: true, rejectUnauthorized: true, maxVersion }, (req, res) => {
    if (req.method === 'GET') peers.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN ?? ''));
    res.writeHead(200, { 'content-length': BLOB.length }).end(BLOB);
  });
  const host = await listen(t, server);
  const dir = await hostsDir(t, host, `server = "https://${host}"\nca = "DIR/ca.crt"\nclient = ${client}\n`);
  const registry = new RegistryClient({ configPath: dir, maxRetries: 0, timeoutMs: 5_000 });
  t.teardown(() => registry.close());
  return { host, peers, fetch: () => registry.fetchBlobBytes(`${host}/lib/app`, DIGEST) };
}

t.test('several hosts.toml client pairs: the first one the server accepts is presented, as containerd does', async (t) => {
  for (const maxVersion of ['TLSv1.3', 'TLSv1.2'] as const) {
    // Trusts TEST_CA only: the self-signed "other" certificate listed first is refused.
    const { peers, fetch } = await severalPairs(t, [TEST_CA], '["DIR/other.pem", ["DIR/client.crt", "DIR/client.key"]]', maxVersion);
    t.ok((await fetch()).equals(BLOB), `${maxVersion}: blob fetched with the second pair`);
    t.ok((await fetch()).equals(BLOB), `${maxVersion}: and again (the choice is kept)`);
    t.same(peers, ['clip-unit-client', 'clip-unit-client'], `${maxVersion}: every request presented the accepted certificate`);

    const refused = await severalPairs(t, [TEST_CA], '["DIR/other.pem", "DIR/other.pem"]', maxVersion);
    const err = await refused.fetch().then(() => undefined, (e: unknown) => e);
    t.equal(findClipError(err)?.kind, 'unavailable', `${maxVersion}: no pair accepted: the request fails (${String((err as Error)?.message).slice(0, 120)})`);
    t.same(refused.peers, [], `${maxVersion}: and nothing got through`);
  }
});

t.test('several pairs the server all accepts: the first listed is presented', async (t) => {
  const { peers, fetch } = await severalPairs(t, [TEST_CA, OTHER_CLIENT_CERT], '["DIR/other.pem", ["DIR/client.crt", "DIR/client.key"]]');
  t.ok((await fetch()).equals(BLOB));
  t.same(peers, ['clip-unit-other-client'], 'the first pair');
});

t.test('probeClientCertificate: accepted, refused by the server, unknown when nothing answers', async (t) => {
  const server = createServer({ cert: SERVER_CERT, key: SERVER_KEY, ca: TEST_CA, requestCert: true, rejectUnauthorized: true }, (_req, res) => res.end());
  const host = await listen(t, server);
  const ep = { scheme: 'https' as const, host, skipVerify: false, caPem: [TEST_CA] };
  t.equal(await probeClientCertificate(ep, { certPem: CLIENT_CERT, keyPem: CLIENT_KEY }, 5_000), 'accepted');
  t.equal(await probeClientCertificate(ep, { certPem: OTHER_CLIENT_CERT, keyPem: OTHER_CLIENT_KEY }, 5_000), 'refused');
  t.equal(await probeClientCertificate({ ...ep, caPem: [] }, { certPem: CLIENT_CERT, keyPem: CLIENT_KEY }, 5_000), 'unknown', 'an untrusted server is not a refusal of the certificate');
  const gone = createServer();
  await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
  const { port } = gone.address() as AddressInfo;
  await new Promise<void>((resolve) => gone.close(() => resolve()));
  t.equal(await probeClientCertificate({ ...ep, host: `127.0.0.1:${port}` }, { certPem: CLIENT_CERT, keyPem: CLIENT_KEY }, 5_000), 'unknown', 'nothing listening');
});
