/**
 * Kubernetes pull secrets reaching lazy reads, end to end: crictl (as the kubelet would) pulls with
 * `--creds` through clip's CRI image-service proxy into containerd 2.x's CRI plugin, from a
 * registry that requires basic auth; the daemon has no docker config.json and no other credential
 * source, so the layer reads a container does after the pull can only authenticate with the
 * credentials the proxy kept. Checks: the pull is lazy (no layer bytes fetched by it), the
 * container reads its file through FUSE from the registry with those credentials, anonymous access
 * to the registry is refused, and the password appears in no log the test can read.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import t from 'tap';
import { createHarness, crictlPath, goModulePins, requireGoModuleBinary, runCommand } from '../harness/index.js';
import { daemonConfigToml } from '../harness/daemon-config.js';
import { pushImage, buildImage } from '../images/index.js';
import { clipCli, criRun, layerBytesSince, observeLayers, pathImageSpec, pauseImageSpec, pushSpec } from '../containerd2/pull-paths.js';

const USER = 'kube-puller';
const PASSWORD = 'cri-Secret-5f3a9c';

function statusOf(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

t.test('crictl pull --creds through the CRI proxy: lazy, and a container reads files with the kept credentials', async (t) => {
  const version = goModulePins().containerd2Versions[0];
  if (!version) throw new Error('integration/go-modules.env lists no containerd 2.x version');
  const h = createHarness(t, 'clip-cri-');
  const open = await h.startRegistry({ name: 'open' });
  const secured = await h.startRegistry({ name: 'secured', htpasswd: { username: USER, password: PASSWORD } });
  t.equal(await statusOf(`${secured.url}/v2/`), 401, 'the registry refuses anonymous access');

  const pause = await pushSpec(pauseImageSpec('cri-creds-pause'), open);
  const image = await pushImage(await buildImage(pathImageSpec('cri-creds-app')), { hostPort: secured.hostPort, creds: { username: USER, password: PASSWORD } });
  // The index artifact is pushed with a docker config only `clip index` sees (what a CI job has).
  const ciDir = join(h.root, 'ci');
  const ciConfig = join(h.root, 'ci.toml');
  await runCommand('mkdir', ['-p', ciDir]);
  writeFileSync(join(ciDir, 'config.json'), JSON.stringify({ auths: { [secured.hostPort]: { auth: Buffer.from(`${USER}:${PASSWORD}`).toString('base64') } } }));
  writeFileSync(ciConfig, `[registry]\nplain_http = true\ndocker_config = ${JSON.stringify(join(ciDir, 'config.json'))}\n`);
  const indexed = await clipCli(['index', image.ref, '--plain-http', '--config', ciConfig]);
  t.equal(indexed.code, 0, `clip index: ${indexed.stderr.slice(-300)}`);

  const containerdDir = join(h.root, 'c-cri');
  const proxySocket = join(h.root, 'clip', 'cri-image.sock');
  const daemonConfig = join(h.root, 'clip.toml');
  // No docker_config, no credential providers: the CRI proxy is the only credential source.
  writeFileSync(daemonConfig, daemonConfigToml({
    containerdAddress: join(containerdDir, 'containerd.sock'),
    hostsDir: join(containerdDir, 'hosts'),
    extraToml: `\n[cri]\nenabled = true\naddress = ${JSON.stringify(proxySocket)}\ncontainerd_address = ${JSON.stringify(join(containerdDir, 'containerd.sock'))}\ncredential_ttl_s = 3600\n`,
  }));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', daemonConfig] });
  const c = await h.startContainerd({
    dirName: 'c-cri',
    version,
    snapshotters: { clip: snap.address },
    plainHttpRegistries: [open.hostPort, secured.hostPort],
    proxyOptions: { clip: { exports: { enable_remote_snapshot_annotations: 'true' } } },
    cri: { snapshotter: 'clip', disableSnapshotAnnotations: true, sandboxImage: pause.ref },
  });
  t.equal(c.address, join(containerdDir, 'containerd.sock'), 'the daemon config names this containerd');
  await c.waitForSnapshotter('clip');

  const crictl = requireGoModuleBinary(crictlPath());
  const viaProxy = (args: string[]) =>
    runCommand(crictl, ['--runtime-endpoint', `unix://${c.address}`, '--image-endpoint', `unix://${proxySocket}`, '--timeout', '120s', ...args], { timeoutMs: 180_000, allowFailure: true });

  const noCreds = await viaProxy(['pull', image.ref]);
  t.not(noCreds.code, 0, 'without --creds containerd cannot pull it either');

  const mark = secured.accessLogLines().length;
  const pulled = await viaProxy(['pull', '--creds', `${USER}:${PASSWORD}`, image.ref]);
  t.equal(pulled.code, 0, `crictl pull --creds via the proxy${pulled.code === 0 ? "" : `: ${pulled.stderr.slice(-400)}`}`);
  const digests = image.layers.map((l) => l.digest);
  t.equal(layerBytesSince(secured, mark, digests), 0, 'the pull fetched no layer bytes');
  const { remote } = await observeLayers(t, c, image, 'k8s.io');
  t.equal(remote, image.layers.length, 'every layer is mounted lazily');
  const listed = await viaProxy(['images', '-q']);
  t.equal(listed.code, 0, 'ListImages through the proxy');
  t.ok(listed.stdout.trim().length > 0, 'containerd answered through the proxy');

  const afterPull = secured.accessLogLines().length;
  t.equal(await criRun(h, c, image.ref, ['cat', '/data/hello.txt']), 'lazy hello\n', 'the container read its file');
  t.ok(layerBytesSince(secured, afterPull, digests) > 0, 'its reads fetched layer bytes from the secured registry after the pull (with the kept credentials)');

  const snapLog = readFileSync(snap.logPath, 'utf8');
  t.match(snapLog, /CRI pull credentials kept for lazy reads/);
  for (const [name, text] of [['snapshotter', snapLog], ['containerd', readFileSync(join(containerdDir, 'containerd.log'), 'utf8')]] as const) {
    t.notOk(text.includes(PASSWORD), `${name} log does not contain the password`);
    t.notOk(text.includes(Buffer.from(`${USER}:${PASSWORD}`).toString('base64')), `${name} log does not contain the basic auth value`);
  }
});
