/**
 * Private registries through real containerd (issue 16, items 1, 3, 5, 6): `clip-snapshotter
 * index` and `pull` and the daemon's lazy reads all go through the one registry client, so
 * - a registry with basic auth over TLS with a private CA (credentials in config.json `auths`,
 *   the CA in hosts.toml),
 * - a registry that requires a client certificate (hosts.toml `client`),
 * - a registry whose credentials come from a docker credential helper (`credHelpers`), and for
 *   one repository from a kubelet credential-provider plugin,
 * each serve a lazy pull: no layer blob is fetched before a container reads files from it. Then
 * no secret used here appears in the daemon's log, the CLI's output, an exported span, a metric
 * or anything under the daemon's root (its index cache and state).
 */
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createHarness, daemonConfigToml, makeTestPki, runClipCli, runCommand, startOtlpReceiver, freePort, type Containerd, type Registry,
} from '../harness/index.js';
import { buildImage, pushImage, type ImageSpec, type PushedImage } from '../images/index.js';
import { addBusyboxRootfs } from '../images/busybox-rootfs.js';
import type { StagingTree } from '../images/staging-tree.js';

t.setTimeout(900_000);
if (process.getuid?.() !== 0) t.plan(0, 'needs root: containerd, FUSE and runc');

const hex = (): string => randomBytes(12).toString('hex');
const BASIC = { username: `basic-${hex()}`, password: `basic-pw-${hex()}` };
const HELPED = { username: `helped-${hex()}`, password: `helper-pw-${hex()}` };

/** One layer (busybox plus a file naming its registry), so no two registries share a layer. */
function imageSpec(name: string, text: string): ImageSpec {
  return {
    name: `auth-${name}`,
    layers: [async (tree: StagingTree) => {
      await addBusyboxRootfs(tree);
      await tree.file('etc/served-by.txt', text);
    }],
    config: { cmd: ['/bin/sh'] },
  };
}

const h = createHarness(t, 'clip-auth-');
const pki = await makeTestPki(join(h.root, 'pki'));
const tls = { certPath: pki.serverCertPath, keyPath: pki.serverKeyPath, caPath: pki.caPath };
const basicReg = await h.startRegistry({ name: 'reg-basic', htpasswd: BASIC, tls });
const mtlsReg = await h.startRegistry({ name: 'reg-mtls', tls: { ...tls, clientCaPath: pki.caPath, probeClient: { certPath: pki.clientCertPath, keyPath: pki.clientKeyPath } } });
const helperReg = await h.startRegistry({ name: 'reg-helper', htpasswd: HELPED, tls });

// skopeo's cert dir for pushing to the mTLS registry: client.cert + client.key.
const skopeoCerts = join(h.root, 'skopeo-certs');
mkdirSync(skopeoCerts, { recursive: true });
writeFileSync(join(skopeoCerts, 'client.cert'), readFileSync(pki.clientCertPath));
writeFileSync(join(skopeoCerts, 'client.key'), readFileSync(pki.clientKeyPath));

const push = async (reg: Registry, name: string, extra: { creds?: typeof BASIC; certDir?: string }): Promise<PushedImage> =>
  pushImage(await buildImage(imageSpec(name, `served by ${name}\n`)), { hostPort: reg.hostPort, ...extra });
const images = {
  basic: await push(basicReg, 'basic', { creds: BASIC }),
  mtls: await push(mtlsReg, 'mtls', { certDir: skopeoCerts }),
  helper: await push(helperReg, 'helper', { creds: HELPED }),
  provided: await push(helperReg, 'provided', { creds: HELPED }),
};

const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address } });
// The layout containerd 1.6's ctr accepts too: the server again as a [host] table holding ca/client.
for (const [reg, client] of [[basicReg, ''], [mtlsReg, `  client = [["${pki.clientCertPath}", "${pki.clientKeyPath}"]]\n`], [helperReg, '']] as const) {
  mkdirSync(join(c.hostsDir, reg.hostPort), { recursive: true });
  writeFileSync(join(c.hostsDir, reg.hostPort, 'hosts.toml'),
    `server = "https://${reg.hostPort}"\n\n[host."https://${reg.hostPort}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${pki.caPath}"\n${client}`);
}

// Credentials: config.json auths for the basic registry, a credential helper for the other one.
const bin = join(h.root, 'bin');
mkdirSync(bin, { recursive: true });
const helperCalls = join(h.root, 'helper.calls');
writeFileSync(join(bin, 'docker-credential-cliptest'), `#!/bin/sh
[ "$1" = get ] || exit 3
read host
echo "$host" >> ${helperCalls}
if [ "$host" = "${helperReg.hostPort}" ]; then
  printf '{"ServerURL":"%s","Username":"${HELPED.username}","Secret":"${HELPED.password}"}' "$host"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`);
chmodSync(join(bin, 'docker-credential-cliptest'), 0o755);
const dockerConfig = join(h.root, 'docker-config.json');
writeFileSync(dockerConfig, JSON.stringify({
  auths: { [basicReg.hostPort]: { auth: Buffer.from(`${BASIC.username}:${BASIC.password}`).toString('base64') } },
  credHelpers: { [helperReg.hostPort]: 'cliptest' },
}));
// A kubelet credential provider for one repository of the helper's registry.
const providerDir = join(h.root, 'providers');
mkdirSync(providerDir, { recursive: true });
const providerRequests = join(h.root, 'provider.requests');
writeFileSync(join(providerDir, 'clip-test-provider'), `#!/bin/sh
# One append per request, with the process that ran it (its parent: plugins are exec'd without a shell).
req=$(cat); printf '%s %s\n' "$PPID" "$req" >> ${providerRequests}
cat <<'JSON'
{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderResponse","cacheKeyType":"Image","cacheDuration":"5m",
 "auth":{"${helperReg.hostPort}/clip-test/auth-provided":{"username":"${HELPED.username}","password":"${HELPED.password}"}}}
JSON
`);
chmodSync(join(providerDir, 'clip-test-provider'), 0o755);
const providerConfig = join(h.root, 'credential-providers.yaml');
writeFileSync(providerConfig, `apiVersion: kubelet.config.k8s.io/v1
kind: CredentialProviderConfig
providers:
  - name: clip-test-provider
    matchImages: ["${helperReg.hostPort}/clip-test/auth-provided"]
    defaultCacheDuration: "1m"
    apiVersion: credentialprovider.kubelet.k8s.io/v1
`);

const otlp = await startOtlpReceiver();
t.teardown(() => otlp.stop());
const metricsPort = await freePort();
const config = join(h.root, 'clip-config.toml');
writeFileSync(config, daemonConfigToml({
  containerdAddress: c.address,
  hostsDir: c.hostsDir,
  dockerConfig,
  credentialProviders: { configPath: providerConfig, binDir: providerDir },
  tracingEndpoint: otlp.endpoint,
  metricsAddress: `127.0.0.1:${metricsPort}`,
}));
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` };
const snap = await h.startSnapshotter({ extraArgs: ['--config', config], env });
await c.waitForSnapshotter('clip');

const cliOutput: string[] = [];
async function clip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runClipCli([...args, '--config', config], { allowFailure: true, timeoutMs: 180_000, env });
  cliOutput.push(res.stdout, res.stderr);
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

const layerGets = (reg: Registry, mark: number, digest: string): number =>
  reg.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${digest}`)).length;

let seq = 0;
async function lazyPullAndRead(tt: Test, reg: Registry, image: PushedImage, c: Containerd): Promise<void> {
  const indexed = await clip(['index', image.ref, '--json']);
  tt.equal(indexed.code, 0, `index artifact pushed through the registry client: ${indexed.stderr.slice(-400)}`);
  const mark = reg.accessLogLines().length;
  const layer = image.layers[0]!.digest;
  const pulled = await clip(['pull', image.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip']);
  tt.equal(pulled.code, 0, `clip-snapshotter pull succeeds: ${pulled.stderr.slice(-400)}`);
  const summary = JSON.parse(pulled.stdout || '{}') as { lazy?: number; full?: number };
  tt.match(summary, { lazy: 1, full: 0 }, 'the layer is prepared lazily');
  tt.equal(layerGets(reg, mark, layer), 0, 'no layer blob GET before the container runs');
  const run = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), image.ref, `auth-${++seq}`, 'cat', '/etc/served-by.txt'], { timeoutMs: 120_000 });
  tt.equal(run.stdout, `served by ${image.name.slice('auth-'.length)}\n`, 'the container reads a file from the lazy layer');
  tt.ok(layerGets(reg, mark, layer) >= 1, 'the layer was fetched on demand, from this registry');
}

t.test('basic auth over TLS with a private CA: config.json auths + hosts.toml ca', async (tt) => {
  const anonymous = await runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.caPath, `${basicReg.url}/v2/`], { allowFailure: true });
  tt.equal(anonymous.stdout, '401', 'the registry refuses anonymous requests');
  await lazyPullAndRead(tt, basicReg, images.basic, c);
});

t.test('a registry that requires a client certificate: hosts.toml client', async (tt) => {
  const noCert = await runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.caPath, `${mtlsReg.url}/v2/`], { allowFailure: true });
  tt.not(noCert.stdout, '200', `without a client certificate the TLS handshake fails (curl: ${noCert.stdout}, exit ${noCert.code})`);
  await lazyPullAndRead(tt, mtlsReg, images.mtls, c);
});

t.test('credentials from a docker credential helper (credHelpers)', async (tt) => {
  await lazyPullAndRead(tt, helperReg, images.helper, c);
  const calls = readFileSync(helperCalls, 'utf8').split('\n').filter(Boolean);
  tt.ok(calls.length >= 1 && calls.every((h) => h === helperReg.hostPort), `the helper was asked for its registry only (${calls.length} calls)`);
});

t.test('credentials from a kubelet credential-provider plugin', async (tt) => {
  await lazyPullAndRead(tt, helperReg, images.provided, c);
  const lines = readFileSync(providerRequests, 'utf8').split('\n').filter(Boolean);
  const requests = lines.map((l) => JSON.parse(l.slice(l.indexOf(' ') + 1)) as { image?: string });
  tt.ok(requests.length >= 1, `the provider was run (${requests.length} times)`);
  // The answer is cached for 5 minutes per image: a process that looks the image up side by side
  // (layers, index artifacts) shares one run instead of running the plugin per look-up.
  const byProcess = new Map<string, number>();
  for (const l of lines) byProcess.set(l.slice(0, l.indexOf(' ')), (byProcess.get(l.slice(0, l.indexOf(' '))) ?? 0) + 1);
  tt.ok([...byProcess.values()].every((n) => n === 1), `one run per process (${JSON.stringify(Object.fromEntries(byProcess))})`);
  tt.ok(requests.every((r) => r.image === `${helperReg.hostPort}/clip-test/auth-provided`), 'with a CredentialProviderRequest for the matching image');
});

t.test('without its credentials a pull fails with a clear code, and a helper that fails is named', async (tt) => {
  const bare = join(h.root, 'clip-config-bare.toml');
  writeFileSync(bare, daemonConfigToml({ containerdAddress: c.address, hostsDir: c.hostsDir }));
  const res = await runClipCli(['pull', images.basic.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--config', bare], { allowFailure: true, timeoutMs: 120_000, env });
  cliOutput.push(res.stdout, res.stderr);
  tt.equal(res.code, 1, 'exit 1');
  tt.match(res.stderr, /HTTP 401.*unauthorized/, `names the refusal: ${res.stderr.trim().slice(-300)}`);
  const broken = join(h.root, 'docker-config-broken.json');
  writeFileSync(broken, JSON.stringify({ credHelpers: { [helperReg.hostPort]: 'missing-helper' } }));
  const withBroken = join(h.root, 'clip-config-broken.toml');
  writeFileSync(withBroken, daemonConfigToml({ containerdAddress: c.address, hostsDir: c.hostsDir, dockerConfig: broken }));
  const res2 = await runClipCli(['pull', images.helper.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--config', withBroken], { allowFailure: true, timeoutMs: 120_000, env });
  cliOutput.push(res2.stdout, res2.stderr);
  tt.equal(res2.code, 1, 'exit 1');
  tt.match(res2.stderr, /credential helper docker-credential-missing-helper .*not found/, `names the helper: ${res2.stderr.trim().slice(-300)}`);
});

function spansHaveRegistry(): boolean {
  return otlp.spans().some((s) => JSON.stringify(s.attributes).includes(basicReg.hostPort) || JSON.stringify(s.attributes).includes(images.basic.layers[0]!.digest));
}

t.test('no secret in a log line, CLI output, span, metric or the daemon root', async (tt) => {
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  await otlp.waitFor((spans) => spans.length > 0, 60_000);
  await snap.stop(); // flushes the span exporter
  const spans = JSON.stringify(otlp.spans(), (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
  const clientKeyBody = readFileSync(pki.clientKeyPath, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('-----')).join('');
  const secrets: Record<string, string> = {
    'basic password': BASIC.password,
    'basic Authorization value': Buffer.from(`${BASIC.username}:${BASIC.password}`).toString('base64'),
    'helper secret': HELPED.password,
    'helper Authorization value': Buffer.from(`${HELPED.username}:${HELPED.password}`).toString('base64'),
    'client key': clientKeyBody.slice(0, 40),
  };
  const control = await runCommand('grep', ['-r', '-l', '-F', '-a', HELPED.password, h.root], { allowFailure: true });
  tt.equal(control.code, 0, 'control: the same grep finds the helper secret where the test wrote it (the helper script)');
  const log = snap.log();
  tt.ok(log.includes(images.basic.layers[0]!.digest), 'control: the log names the lazily read layers (so it covers the auth traffic)');
  tt.ok(spansHaveRegistry(), 'control: spans of the registry reads were exported');
  tt.ok(log.length > 1000, `the daemon logged (${log.length} bytes at debug level)`);
  tt.ok(otlp.spans().length > 0, `spans were exported (${otlp.spans().length})`);
  for (const [what, secret] of Object.entries(secrets)) {
    tt.notOk(log.includes(secret), `${what}: not in the daemon log`);
    tt.notOk(cliOutput.some((o) => o.includes(secret)), `${what}: not in CLI output`);
    tt.notOk(spans.includes(secret), `${what}: not in an exported span`);
    tt.notOk(metrics.includes(secret), `${what}: not in the metrics`);
    const grep = await runCommand('grep', ['-r', '-l', '-F', '-a', secret, snap.root], { allowFailure: true });
    tt.equal(grep.code, 1, `${what}: in no file under the daemon root (${grep.stdout.trim()})`);
  }
});
