/**
 * Tokens that expire, end to end: a registry behind a token service (integration/harness/
 * token-server.ts) whose tokens last a few seconds (the registry refuses them after that); crictl
 * pulls lazily with `--creds` through clip's CRI proxy into containerd 2.x's CRI; a container reads
 * a file of its first layer, then — after every token issued so far has expired (polled from the
 * token server, not slept) — a file of its second layer, which clip has not fetched yet. clip must
 * get a new token with the credentials the CRI proxy kept. Neither the password nor any issued
 * token appears in the snapshotter's log.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { createHarness, crictlPath, goModulePins, requireGoModuleBinary, runCommand, startTokenServer, waitUntil } from '../harness/index.js';
import { daemonConfigToml } from '../harness/daemon-config.js';
import { buildImage, pushImage } from '../images/index.js';
import { clipCli, layerBytesSince, observeLayers, pathImageSpec, pauseImageSpec, pushSpec } from '../containerd2/pull-paths.js';

const USER = 'token-user';
const PASSWORD = 'tok-Secret-81d2e7';
const EXPIRES_IN_S = 6;

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; wwwAuthenticate: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 5000, headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, wwwAuthenticate: String(res.headers['www-authenticate'] ?? '') });
    });
    req.once('error', reject);
    req.end();
  });
}

t.test('a container reads a not-yet-fetched layer after every token it had expired', async (t) => {
  const version = goModulePins().containerd2Versions[0];
  if (!version) throw new Error('integration/go-modules.env lists no containerd 2.x version');
  const h = createHarness(t, 'clip-tok-');
  const tokenDir = join(h.root, 'token');
  mkdirSync(tokenDir, { recursive: true });
  const tokens = await startTokenServer({ dir: tokenDir, username: USER, password: PASSWORD, expiresInS: EXPIRES_IN_S });
  t.teardown(() => tokens.close());
  const open = await h.startRegistry({ name: 'open' });
  const secured = await h.startRegistry({ name: 'secured', token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  const anon = await get(`${secured.url}/v2/`);
  t.equal(anon.status, 401, 'the registry refuses anonymous access');
  t.match(anon.wwwAuthenticate, /^Bearer realm=/, 'and sends clients to the token service');

  const pause = await pushSpec(pauseImageSpec('tok-pause'), open);
  const image = await pushImage(await buildImage(pathImageSpec('tok-app')), { hostPort: secured.hostPort, creds: { username: USER, password: PASSWORD } });
  const ciDir = join(h.root, 'ci');
  mkdirSync(ciDir, { recursive: true });
  writeFileSync(join(ciDir, 'config.json'), JSON.stringify({ auths: { [secured.hostPort]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  writeFileSync(join(h.root, 'ci.toml'), `[registry]\nplain_http = true\ndocker_config = ${JSON.stringify(join(ciDir, 'config.json'))}\n`);
  const indexed = await clipCli(['index', image.ref, '--plain-http', '--config', join(h.root, 'ci.toml')]);
  t.equal(indexed.code, 0, `clip index: ${indexed.stderr.slice(-300)}`);

  const containerdDir = join(h.root, 'c-tok');
  const containerdSock = join(containerdDir, 'containerd.sock');
  const proxySocket = join(h.root, 'clip', 'cri-image.sock');
  const daemonConfig = join(h.root, 'clip.toml');
  // The CRI proxy is the only credential source; no background completion, so the second layer
  // is fetched only when the container reads it.
  writeFileSync(daemonConfig, daemonConfigToml({
    containerdAddress: containerdSock,
    hostsDir: join(containerdDir, 'hosts'),
    extraToml: `\n[index]\nrange_completion_bytes_per_sec = 0\n\n[cri]\nenabled = true\naddress = ${JSON.stringify(proxySocket)}\ncontainerd_address = ${JSON.stringify(containerdSock)}\n`,
  }));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', daemonConfig] });
  const c = await h.startContainerd({
    dirName: 'c-tok',
    version,
    snapshotters: { clip: snap.address },
    plainHttpRegistries: [open.hostPort, secured.hostPort],
    proxyOptions: { clip: { exports: { enable_remote_snapshot_annotations: 'true' } } },
    cri: { snapshotter: 'clip', disableSnapshotAnnotations: true, sandboxImage: pause.ref },
  });
  await c.waitForSnapshotter('clip');
  const crictl = requireGoModuleBinary(crictlPath());
  const cri = (args: string[], imageEndpoint = `unix://${c.address}`) =>
    runCommand(crictl, ['--runtime-endpoint', `unix://${c.address}`, '--image-endpoint', imageEndpoint, '--timeout', '120s', ...args], { timeoutMs: 180_000 });

  const mark = secured.accessLogLines().length;
  await cri(['pull', '--creds', `${USER}:${PASSWORD}`, image.ref], `unix://${proxySocket}`);
  const [base, app] = image.layers.map((l) => l.digest) as [string, string];
  t.equal(layerBytesSince(secured, mark, [base, app]), 0, 'the pull fetched no layer bytes');
  const { remote } = await observeLayers(t, c, image, 'k8s.io');
  t.equal(remote, image.layers.length, 'every layer is mounted lazily');

  // A pod whose container reads layer 1, waits for /signal/go (a host directory), then reads layer 2.
  const dir = join(h.root, 'pod');
  const signal = join(dir, 'signal');
  mkdirSync(signal, { recursive: true });
  const pod = {
    metadata: { name: 'clip-tok-pod', namespace: 'default', uid: `clip-tok-${process.pid}`, attempt: 0 },
    log_directory: dir,
    linux: { cgroup_parent: '/clip-test', security_context: { namespace_options: { network: 2 } } },
  };
  const script = 'cat /etc/clip-path; while [ ! -e /signal/go ]; do sleep 1; done; cat /data/hello.txt';
  const ctr = {
    metadata: { name: 'clip-tok-ctr' }, image: { image: image.ref }, command: ['/bin/sh', '-c', script], log_path: 'out.log',
    mounts: [{ container_path: '/signal', host_path: signal, readonly: true }], linux: {},
  };
  writeFileSync(join(dir, 'pod.json'), JSON.stringify(pod));
  writeFileSync(join(dir, 'ctr.json'), JSON.stringify(ctr));
  const podId = (await cri(['runp', join(dir, 'pod.json')])).stdout.trim();
  t.teardown(async () => {
    await runCommand(crictl, ['--runtime-endpoint', `unix://${c.address}`, 'rmp', '-f', podId], { allowFailure: true, timeoutMs: 60_000 });
  });
  const id = (await cri(['create', podId, join(dir, 'ctr.json'), join(dir, 'pod.json')])).stdout.trim();
  await cri(['start', id]);
  const log = join(dir, 'out.log');
  const printed = (): string => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ')).join('\n') : '');
  await waitUntil('the container read its first layer', async () => printed().includes('tok-app'), 120_000, 200);
  t.equal(layerBytesSince(secured, mark, [app]), 0, 'the second layer is still unfetched');

  const beforeExpiry = tokens.issued();
  t.ok(beforeExpiry.length > 0, `tokens issued so far: ${beforeExpiry.length}`);
  const lastExpiry = Math.max(...beforeExpiry.map((x) => x.expiresAtMs));
  await waitUntil('every token issued so far has expired', async () => Date.now() > lastExpiry + 1000, 120_000, 200);
  const stale = beforeExpiry[beforeExpiry.length - 1]!;
  const refusedNow = await get(`${secured.url}/v2/${image.ref.split('/').slice(1).join('/').replace(/:[^:]+$/, '')}/manifests/latest`, { authorization: `Bearer ${stale.token}` });
  t.equal(refusedNow.status, 401, 'the registry refuses the last token issued (tokens really expire)');

  const readMark = secured.accessLogLines().length;
  const refusedBefore = tokens.refused();
  writeFileSync(join(signal, 'go'), '');
  await waitUntil('the container read its second layer', async () => printed().includes('lazy hello'), 120_000, 200);
  t.match(printed(), /tok-app\nlazy hello/, 'both files read');
  t.ok(tokens.issued().length > beforeExpiry.length, `clip got a new token after expiry (${tokens.issued().length - beforeExpiry.length} issued)`);
  // The registry writes its access-log line after the response; a loaded machine can show the
  // container's output first, so wait (bounded) for the line rather than read the log once.
  const fetched = await waitUntil('the registry logged the second layer', async () => layerBytesSince(secured, readMark, [app]) > 0, 30_000, 200).then(() => true, () => false);
  t.ok(fetched, 'the second layer came from the registry after the tokens expired');
  t.equal(tokens.refused(), refusedBefore, 'the token service refused nothing after expiry (clip sent the kept credentials at once)');

  const snapLog = readFileSync(snap.logPath, 'utf8');
  t.notOk(snapLog.includes(PASSWORD), 'the password is not in the snapshotter log');
  t.notOk(tokens.issued().some((x) => snapLog.includes(x.token) || snapLog.includes(x.token.split('.')[2]!)), 'no issued token is in the snapshotter log');
});
