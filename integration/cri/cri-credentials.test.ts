/**
 * Kubernetes pull secrets reaching lazy reads, end to end: crictl (as the kubelet would) pulls with
 * `--creds` through clip's CRI image-service proxy into containerd 2.x's CRI plugin, from a
 * registry that requires basic auth; the daemon has no docker config.json and no other credential
 * source, so the layer reads a container does after the pull can only authenticate with the
 * credentials the proxy kept. Checks: the pull is lazy (no layer bytes fetched by it), the
 * container reads its file through FUSE from the registry with those credentials, anonymous access
 * to the registry is refused, and the password appears in no log the test can read.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { createHarness, filesHoldingSecrets, httpStatus, indexWithCredentials, startCriNode } from '../harness/index.js';
import { pushImage, buildImage } from '../images/index.js';
import { criRun, layerBytesSince, observeLayers, pathImageSpec } from '../containerd2/pull-paths.js';

const USER = 'kube-puller';
const PASSWORD = 'cri-Secret-5f3a9c';

t.test('crictl pull --creds through the CRI proxy: lazy, and a container reads files with the kept credentials', async (t) => {
  const h = createHarness(t, 'clip-cri-');
  const secured = await h.startRegistry({ name: 'secured', htpasswd: { username: USER, password: PASSWORD } });
  t.equal((await httpStatus(`${secured.url}/v2/`)).status, 401, 'the registry refuses anonymous access');

  const image = await pushImage(await buildImage(pathImageSpec('cri-creds-app')), { hostPort: secured.hostPort, creds: { username: USER, password: PASSWORD } });
  // The index artifact is pushed with a docker config only `clip index` sees (what a CI job has).
  const indexed = await indexWithCredentials(h, image.ref, { username: USER, password: PASSWORD });
  t.equal(indexed.code, 0, `clip index: ${indexed.stderr.slice(-300)}`);

  // No docker_config, no credential providers: the CRI proxy is the only credential source.
  const node = await startCriNode(h, { plainHttpRegistries: [secured.hostPort], credentialTtlS: 3600 });
  const { c, snap } = node;

  const noCreds = await node.pull(image.ref, { allowFailure: true });
  t.not(noCreds.code, 0, 'without --creds containerd cannot pull it either');

  const mark = secured.accessLogLines().length;
  const pulled = await node.pull(image.ref, { creds: { username: USER, password: PASSWORD }, allowFailure: true });
  t.equal(pulled.code, 0, `crictl pull --creds via the proxy${pulled.code === 0 ? "" : `: ${pulled.stderr.slice(-400)}`}`);
  const digests = image.layers.map((l) => l.digest);
  t.equal(layerBytesSince(secured, mark, digests), 0, 'the pull fetched no layer bytes');
  const { remote } = await observeLayers(t, c, image, 'k8s.io');
  t.equal(remote, image.layers.length, 'every layer is mounted lazily');
  const listed = await node.crictl(['images', '-q'], { allowFailure: true });
  t.equal(listed.code, 0, 'ListImages through the proxy');
  t.ok(listed.stdout.trim().length > 0, 'containerd answered through the proxy');

  const afterPull = secured.accessLogLines().length;
  t.equal(await criRun(h, c, image.ref, ['cat', '/data/hello.txt']), 'lazy hello\n', 'the container read its file');
  t.ok(layerBytesSince(secured, afterPull, digests) > 0, 'its reads fetched layer bytes from the secured registry after the pull (with the kept credentials)');

  const snapLog = readFileSync(snap.logPath, 'utf8');
  t.match(snapLog, /CRI pull credentials kept for lazy reads/);
  // Every file under the test root: the logs of clip, containerd and the registry, their state and caches.
  const found = filesHoldingSecrets(h.root, { password: PASSWORD, 'basic-auth value': Buffer.from(`${USER}:${PASSWORD}`).toString('base64') });
  t.ok(found['basic-auth value']!.some((f) => /^ci-\d+\/config\.json$/.test(f)), 'control: the search finds the auth value in the CI config.json the test wrote');
  t.same(found.password, [], 'the password is in no file under the test root');
  t.same(found['basic-auth value']!.filter((f) => !/^ci-\d+\/config\.json$/.test(f)), [], 'the basic auth value is in no file the components wrote');
  t.notOk([pulled.stdout, pulled.stderr].some((o) => o.includes(PASSWORD)), 'nor in crictl\'s output');
});
