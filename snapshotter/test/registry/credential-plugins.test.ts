import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { findClipError } from '../../src/errors/index.js';
import {
  ChainedCredentials, DockerConfigCredentials, DockerCredentialHelper, KubeletCredentialProviders, StaticCredentials, imageMatches, parseGoDuration, parseProviderConfig,
} from '../../src/registry/index.js';

const SECRET = 's3cret-helper-value';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-credplugin-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function script(path: string, body: string): Promise<void> {
  await writeFile(path, `#!/bin/sh\n${body}\n`);
  await chmod(path, 0o755);
}

/** A docker-credential-<name> in `dir` that logs each call and answers by host. */
async function helper(dir: string, name: string): Promise<string> {
  const calls = join(dir, `${name}.calls`);
  await script(join(dir, `docker-credential-${name}`), `
[ "$1" = get ] || exit 3
read host
echo "$host" >> ${calls}
case "$host" in
  basic.example:5000) printf '{"ServerURL":"%s","Username":"alice","Secret":"${SECRET}"}' "$host" ;;
  token.example) printf '{"ServerURL":"%s","Username":"<token>","Secret":"${SECRET}"}' "$host" ;;
  broken.example) echo "leaking ${SECRET}"; exit 2 ;;
  slow.example) sleep 5 ;;
  chatty.example) head -c 200000 /dev/zero | tr '\\0' x ;;
  notjson.example) echo "${SECRET} not json" ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac`);
  return calls;
}

const env = (dir: string): NodeJS.ProcessEnv => ({ ...process.env, PATH: `${dir}:${process.env.PATH ?? '/usr/bin:/bin'}` });
const lines = async (p: string): Promise<string[]> => (await readFile(p, 'utf8').catch(() => '')).split('\n').filter(Boolean);

async function failure(p: Promise<unknown>): Promise<{ code: string | undefined; message: string }> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  const ce = findClipError(err);
  return { code: ce?.code, message: String((err as Error | undefined)?.message) };
}

t.test('docker credential helper: basic, identity token, not found, cached', async (t) => {
  const dir = await tempDir(t);
  const calls = await helper(dir, 'clip');
  let now = 1_000;
  const h = new DockerCredentialHelper('clip', { env: env(dir), cacheMs: 60_000, nowMs: () => now });
  t.same(await h.get('basic.example:5000'), { type: 'basic', username: 'alice', password: SECRET });
  t.same(await h.get('token.example'), { type: 'identity_token', username: '', token: SECRET });
  t.equal(await h.get('other.example'), undefined, '"credentials not found" is no credential, not an error');
  t.same(await h.get('basic.example:5000'), { type: 'basic', username: 'alice', password: SECRET });
  t.same(await lines(calls), ['basic.example:5000', 'token.example', 'other.example'], 'the second basic lookup came from the cache');
  now += 60_001;
  await h.get('basic.example:5000');
  t.equal((await lines(calls)).length, 4, 'asked again once the cache time passed');
});

t.test('docker credential helper failures are typed and never quote the output', async (t) => {
  const dir = await tempDir(t);
  await helper(dir, 'clip');
  // Only the slow helper meets a short deadline: a loaded machine (CI) may take longer than that to
  // start a shell, and the other cases would then time out instead of failing their own way.
  const h = new DockerCredentialHelper('clip', { env: env(dir), timeoutMs: 60_000 });
  const broken = await failure(h.get('broken.example'));
  t.equal(broken.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED');
  t.match(broken.message, /docker-credential-clip.*status 2/);
  t.notMatch(broken.message, SECRET);
  const slow = await failure(new DockerCredentialHelper('clip', { env: env(dir), timeoutMs: 300 }).get('slow.example'));
  t.equal(slow.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_TIMEOUT');
  const chatty = await failure(h.get('chatty.example'));
  t.equal(chatty.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT');
  const notJson = await failure(h.get('notjson.example'));
  t.equal(notJson.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT');
  t.notMatch(notJson.message, SECRET);
  const missing = await failure(new DockerCredentialHelper('absent', { env: env(dir) }).get('x'));
  t.equal(missing.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED');
  t.match(missing.message, /docker-credential-absent.*not found/);
  t.throws(() => new DockerCredentialHelper('../evil'), { code: 'CLIP_REGISTRY_INVALID_CONFIG' });
});

t.test('docker config: credHelpers before auths before credsStore; re-read on change', async (t) => {
  const dir = await tempDir(t);
  await helper(dir, 'clip');
  await helper(dir, 'store');
  const path = join(dir, 'config.json');
  const auth = Buffer.from('bob:file-password').toString('base64');
  await writeFile(path, JSON.stringify({
    auths: { 'basic.example:5000': { auth }, 'file.example': { auth }, 'token.example': {} },
    credHelpers: { 'basic.example:5000': 'clip' },
    credsStore: 'store',
  }));
  const creds = new DockerConfigCredentials(path, { env: env(dir) });
  t.same(await creds.get('basic.example:5000'), { type: 'basic', username: 'alice', password: SECRET }, 'credHelpers wins over auths');
  t.same(await creds.get('file.example'), { type: 'basic', username: 'bob', password: 'file-password' }, 'auths entry');
  t.same(await creds.get('token.example'), { type: 'identity_token', username: '', token: SECRET }, 'an empty auths entry goes to credsStore');
  t.equal(await creds.get('nowhere.example'), undefined);
  await writeFile(path, JSON.stringify({ auths: { 'file.example': { auth: Buffer.from('bob:rotated-password-longer').toString('base64') } } }));
  t.same(await creds.get('file.example'), { type: 'basic', username: 'bob', password: 'rotated-password-longer' }, 'the rewritten file is read again');
  t.equal(await creds.get('basic.example:5000'), undefined, 'the helper is gone with the rewrite');
  await writeFile(path, '{"credHelpers": {"x": 7}}');
  t.equal((await failure(creds.get('x'))).code, 'CLIP_REGISTRY_INVALID_CONFIG');
});

const PROVIDER_YAML = (extra = '') => `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: test-provider
    matchImages:
      - "*.private.example"
      - "127.0.0.1:5000/team"
    defaultCacheDuration: "10m"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
    args: ["--flag"]
    env:
      - name: PROVIDER_MODE
        value: normal
${extra}`;

async function provider(dir: string, response: string): Promise<{ calls: string; requests: string }> {
  const calls = join(dir, 'provider.calls');
  const requests = join(dir, 'provider.requests');
  await script(join(dir, 'test-provider'), `
[ "$1" = --flag ] || exit 4
[ "$PROVIDER_MODE" = normal ] || exit 5
cat >> ${requests}; echo >> ${requests}
echo call >> ${calls}
cat <<'JSON'
${response}
JSON`);
  return { calls, requests };
}

t.test('kubelet credential provider: request, matching, auth keys, cacheDuration', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'providers.yaml');
  await writeFile(config, PROVIDER_YAML());
  const { calls, requests } = await provider(dir, JSON.stringify({
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderResponse', cacheKeyType: 'Registry', cacheDuration: '5m',
    auth: { '*.private.example': { username: 'wide', password: 'wide-pw' }, 'reg.private.example/app': { username: 'kube', password: SECRET }, '127.0.0.1:5000': { username: 'ip', password: 'ip-pw' } },
  }));
  let now = 0;
  const p = new KubeletCredentialProviders({ configPath: config, binDir: dir, nowMs: () => now });
  t.same(await p.get('reg.private.example', 'app/web'), { type: 'basic', username: 'kube', password: SECRET }, 'the most specific auth key wins');
  t.same(JSON.parse((await lines(requests))[0]!), { apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderRequest', image: 'reg.private.example/app/web' });
  t.same(await p.get('reg.private.example', 'app/web'), { type: 'basic', username: 'kube', password: SECRET });
  t.equal((await lines(calls)).length, 1, 'cached per registry for cacheDuration');
  t.equal(await p.get('elsewhere.example', 'app'), undefined, 'an image no matchImages glob matches never runs the provider');
  t.equal(await p.get('127.0.0.1:5000', 'other/app'), undefined, 'the glob path must prefix the image path');
  t.same(await p.get('127.0.0.1:5000', 'team/app'), { type: 'basic', username: 'ip', password: 'ip-pw' });
  t.equal((await lines(calls)).length, 2);
  now += 5 * 60_000 + 1;
  await p.get('reg.private.example', 'app/web');
  t.equal((await lines(calls)).length, 3, 'asked again after cacheDuration');
});

t.test('kubelet credential provider: concurrent look-ups of one image share one run', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'providers.yaml');
  await writeFile(config, PROVIDER_YAML());
  const { calls } = await provider(dir, JSON.stringify({
    apiVersion: 'credentialprovider.kubelet.k8s.io/v1', kind: 'CredentialProviderResponse', cacheKeyType: 'Image', cacheDuration: '5m',
    auth: { 'reg.private.example': { username: 'kube', password: SECRET } },
  }));
  const p = new KubeletCredentialProviders({ configPath: config, binDir: dir });
  const answers = await Promise.all(Array.from({ length: 6 }, () => p.get('reg.private.example', 'app/web')));
  for (const a of answers) t.same(a, { type: 'basic', username: 'kube', password: SECRET });
  t.equal((await lines(calls)).length, 1, 'six look-ups started together ran the provider once');
  await Promise.all([p.get('reg.private.example', 'app/other'), p.get('reg.private.example', 'app/other')]);
  t.equal((await lines(calls)).length, 2, 'another image (cacheKeyType Image) gets its own run, shared by its two callers');
});

t.test('kubelet credential provider: a failed run fails every caller that shared it, and the next look-up runs again', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'providers.yaml');
  await writeFile(config, PROVIDER_YAML());
  const { calls } = await provider(dir, '{"kind": "NotAResponse"}');
  const p = new KubeletCredentialProviders({ configPath: config, binDir: dir });
  const fs = await Promise.all([failure(p.get('reg.private.example', 'app')), failure(p.get('reg.private.example', 'app'))]);
  for (const f of fs) t.equal(f.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT');
  t.equal((await lines(calls)).length, 1, 'one run for both callers');
  t.equal((await failure(p.get('reg.private.example', 'app'))).code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT');
  t.equal((await lines(calls)).length, 2, 'a failure is not cached: the next look-up runs the provider again');
});

t.test('kubelet credential provider: a bad response is a typed error without secrets', async (t) => {
  const dir = await tempDir(t);
  const config = join(dir, 'providers.yaml');
  await writeFile(config, PROVIDER_YAML());
  await provider(dir, JSON.stringify({ apiVersion: 'credentialprovider.kubelet.k8s.io/v1beta1', kind: 'CredentialProviderResponse', auth: { x: { username: 'u', password: SECRET } } }));
  const p = new KubeletCredentialProviders({ configPath: config, binDir: dir });
  const f = await failure(p.get('reg.private.example', 'app'));
  t.equal(f.code, 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT');
  t.match(f.message, /apiVersion/);
  t.notMatch(f.message, SECRET);
});

t.test('CredentialProviderConfig validation', async (t) => {
  const base = { apiVersion: 'kubelet.config.k8s.io/v1', kind: 'CredentialProviderConfig' };
  const ok = { name: 'p', matchImages: ['*.x'], defaultCacheDuration: '1h', apiVersion: 'credentialprovider.kubelet.k8s.io/v1' };
  t.same(parseProviderConfig({ ...base, providers: [ok] }, 'c')[0], { name: 'p', matchImages: ['*.x'], defaultCacheMs: 3_600_000, apiVersion: ok.apiVersion, args: [], env: {} });
  for (const [why, doc] of [
    ['kind', { ...base, kind: 'Other', providers: [ok] }],
    ['config apiVersion', { ...base, apiVersion: 'v9', providers: [ok] }],
    ['name with a slash', { ...base, providers: [{ ...ok, name: '../bin/sh' }] }],
    ['no matchImages', { ...base, providers: [{ ...ok, matchImages: [] }] }],
    ['plugin apiVersion', { ...base, providers: [{ ...ok, apiVersion: 'credentialprovider.kubelet.k8s.io/v2' }] }],
    ['duration', { ...base, providers: [{ ...ok, defaultCacheDuration: 'ten minutes' }] }],
    ['duplicate', { ...base, providers: [ok, ok] }],
  ] as const) {
    t.throws(() => parseProviderConfig(doc, 'c'), { code: 'CLIP_REGISTRY_INVALID_CONFIG' }, why);
  }
});

t.test('image matching and Go durations', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['*.dkr.ecr.*.amazonaws.com', '123.dkr.ecr.us-east-1.amazonaws.com/app', true],
    ['*.dkr.ecr.*.amazonaws.com', 'dkr.ecr.us-east-1.amazonaws.com/app', false],
    ['*.example', 'a.b.example/app', false],
    ['registry.example:5000', 'registry.example:5000/app', true],
    ['registry.example:5000', 'registry.example/app', false],
    ['registry.example', 'registry.example:5000/app', false],
    ['registry.example/team', 'registry.example/team/app', true],
    ['registry.example/team', 'registry.example/other', false],
    ['https://registry.example', 'registry.example/x', true],
    ['reg?.example', 'reg1.example/x', true],
    ['reg[0-9].example', 'rega.example/x', false],
  ];
  for (const [glob, image, want] of cases) t.equal(imageMatches(glob, image), want, `${glob} ~ ${image}`);
  t.equal(parseGoDuration('1h30m'), 5_400_000);
  t.equal(parseGoDuration('0'), 0);
  t.equal(parseGoDuration('1.5s'), 1500);
  t.equal(parseGoDuration('10'), undefined);
  t.equal(parseGoDuration('5m junk'), undefined);
});

t.test('a broken source after one that answered does not fail the lookup; a broken first source does', async (t) => {
  const good = new StaticCredentials({ 'reg.example': { type: 'basic', username: 'u', password: 'p' } });
  const broken = { get: async (): Promise<undefined> => { throw new Error('helper crashed'); } };
  t.same(await new ChainedCredentials([good, broken]).all('reg.example'), [{ type: 'basic', username: 'u', password: 'p' }]);
  await t.rejects(new ChainedCredentials([broken, good]).all('reg.example'), /helper crashed/);
  await t.rejects(new ChainedCredentials([good, broken]).all('other.example'), /helper crashed/, 'no answer: the failure is the result');
});
