import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { isKind } from '../../src/errors/index.js';
import { parseDockerAuths, resolveHosts, StaticCredentials } from '../../src/registry/index.js';

t.test('defaults without a hosts directory', async (t) => {
  const [hub] = await resolveHosts('docker.io');
  t.match(hub, { scheme: 'https', host: 'registry-1.docker.io', path: '/v2', mirror: false });
  t.equal((await resolveHosts('127.0.0.1:5000'))[0]?.scheme, 'http', 'loopback is plain http');
  t.equal((await resolveHosts('reg.example', { plainHttp: true }))[0]?.scheme, 'http', '--plain-http');
});

t.test('hosts.toml: mirrors in order, server last, ca/header/skip_verify/capabilities', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-hosts-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'docker.io'));
  await writeFile(join(dir, 'docker.io', 'ca.pem'), 'PEM-DATA');
  await writeFile(join(dir, 'docker.io', 'hosts.toml'), `
server = "https://registry-1.docker.io"
[host."http://mirror-a:5000"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
[host."https://mirror-b/base"]
  capabilities = ["pull"]
  ca = "ca.pem"
  [host."https://mirror-b/base".header]
    x-token = ["a", "b"]
[host."https://mirror-c/v2/custom"]
  override_path = true
`);
  const hosts = await resolveHosts('docker.io', { configPath: dir });
  t.same(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`), [
    'http://mirror-a:5000/v2', 'https://mirror-b/base/v2', 'https://mirror-c/v2/custom', 'https://registry-1.docker.io/v2',
  ]);
  t.same(hosts[0]?.capabilities, ['pull', 'resolve']);
  t.equal(hosts[0]?.skipVerify, true);
  t.same(hosts[1]?.caPem, ['PEM-DATA']);
  t.same(hosts[1]?.headers, { 'x-token': 'a, b' });
  t.same(hosts[3]?.capabilities, ['pull', 'resolve', 'push']);
  t.same(hosts.map((h) => h.mirror), [true, true, true, false]);
  t.equal((await resolveHosts('other.example', { configPath: dir })).length, 1, 'no file: default server only');

  await mkdir(join(dir, 'bad.example'));
  await writeFile(join(dir, 'bad.example', 'hosts.toml'), '[host."ftp://x"]\n');
  await t.rejects(resolveHosts('bad.example', { configPath: dir }), { code: 'CLIP_REGISTRY_INVALID_CONFIG' });
  await writeFile(join(dir, 'bad.example', 'hosts.toml'), 'server = [');
  const err = await resolveHosts('bad.example', { configPath: dir }).catch((e: unknown) => e);
  t.ok(isKind(err, 'invalid_argument'));
});

t.test('docker config.json auths', async (t) => {
  const creds = parseDockerAuths({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
      'http://127.0.0.1:5000': { identitytoken: 'refresh-me', auth: Buffer.from('<token>:').toString('base64') },
      'reg.example': { username: 'u', password: 'p' },
      'empty.example': {},
    },
  }, 'test');
  t.same(creds.get('docker.io'), { type: 'basic', username: 'hub', password: 'pw:with:colons' });
  t.same(creds.get('127.0.0.1:5000'), { type: 'identity_token', username: '<token>', token: 'refresh-me' });
  t.same(creds.get('reg.example'), { type: 'basic', username: 'u', password: 'p' });
  t.equal(creds.has('empty.example'), false);
  t.throws(() => parseDockerAuths({ auths: { x: { auth: Buffer.from('nocolon').toString('base64') } } }, 'test'), { code: 'CLIP_REGISTRY_INVALID_CONFIG' });
  const store = new StaticCredentials({ 'https://registry-1.docker.io': { type: 'registry_token', token: 't' } });
  t.same(await store.get('docker.io'), { type: 'registry_token', token: 't' });
});

t.test('hosts.toml client: one PEM, a [cert, key] pair, a list of both kinds, and typed refusals', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-hosts-client-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cert = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const key = '-----BEGIN PRIVATE KEY-----\nBBBB\n-----END PRIVATE KEY-----\n';
  await writeFile(join(dir, 'both.pem'), cert + key);
  await writeFile(join(dir, 'c.crt'), cert);
  await writeFile(join(dir, 'c.key'), key);
  await mkdir(join(dir, 'one.example'));
  await writeFile(join(dir, 'one.example', 'hosts.toml'), `server = "https://one.example"\nclient = "${join(dir, 'both.pem')}"\n`);
  t.same((await resolveHosts('one.example', { configPath: dir }))[0]?.clientCerts, [{ certPem: cert + key, keyPem: cert + key }]);
  await mkdir(join(dir, 'pair.example'));
  await writeFile(join(dir, 'pair.example', 'hosts.toml'), `server = "https://pair.example"\n[host."https://mirror.example"]\n  client = [["../c.crt", "../c.key"]]\n`);
  const [mirror, server] = await resolveHosts('pair.example', { configPath: dir });
  t.same(mirror?.clientCerts, [{ certPem: cert, keyPem: key }], 'relative paths from the hosts.toml directory');
  t.equal(server?.clientCerts, undefined, 'only the host that names a client certificate presents one');
  // containerd's list forms, mixed: every pair is kept, in file order.
  const cert2 = cert.replace('AAAA', 'CCCC');
  await writeFile(join(dir, 'd.crt'), cert2);
  await mkdir(join(dir, 'many.example'));
  await writeFile(join(dir, 'many.example', 'hosts.toml'), `server = "https://many.example"
client = [["../d.crt", "../c.key"], "../both.pem", ["../c.crt", "../c.key"]]
`);
  t.same((await resolveHosts('many.example', { configPath: dir }))[0]?.clientCerts,
    [{ certPem: cert2, keyPem: key }, { certPem: cert + key, keyPem: cert + key }, { certPem: cert, keyPem: key }], 'every pair, in order');
  for (const [name, value] of [
    ['nokey.example', `"${join(dir, 'c.crt')}"`], ['missing.example', `"${join(dir, 'nope.pem')}"`], ['shape.example', '7'], ['empty.example', '[]'],
    ['triple.example', '[["a", "b", "c"]]'], ['badsecond.example', `["${join(dir, 'both.pem')}", "${join(dir, 'c.crt')}"]`],
  ] as const) {
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'hosts.toml'), `server = "https://${name}"\nclient = ${value}\n`);
    const err = await resolveHosts(name, { configPath: dir }).catch((e: unknown) => e);
    t.match(err, { code: 'CLIP_REGISTRY_INVALID_CONFIG' }, name);
    t.notMatch(String((err as Error).message), 'BBBB', 'never quotes key material');
  }
});

t.test('a [host] table for the server URL configures the server, not a mirror of it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-hosts-own-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'reg.example:5000'));
  await writeFile(join(dir, 'reg.example:5000', 'ca.pem'), 'CA');
  await writeFile(join(dir, 'reg.example:5000', 'hosts.toml'), `server = "https://reg.example:5000"
[host."https://reg.example:5000"]
  capabilities = ["pull", "resolve"]
  ca = "ca.pem"
[host."https://mirror.example"]
`);
  const hosts = await resolveHosts('reg.example:5000', { configPath: dir });
  t.same(hosts.map((h) => `${h.host}:${String(h.mirror)}`), ['mirror.example:true', 'reg.example:5000:false'], 'the server once, last, not a mirror');
  t.same(hosts[1]?.caPem, ['CA'], 'with the settings of its [host] table');
  t.same(hosts[1]?.capabilities, ['pull', 'resolve']);
});
