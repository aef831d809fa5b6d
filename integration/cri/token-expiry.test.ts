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
import { join } from 'node:path';
import t from 'tap';
import { createHarness, filesHoldingSecrets, httpStatus, indexWithCredentials, startCriNode, startTokenServer, waitUntil } from '../harness/index.js';
import { buildImage, pushImage } from '../images/index.js';
import { layerBytesSince, observeLayers, pathImageSpec } from '../containerd2/pull-paths.js';

const USER = 'token-user';
const PASSWORD = 'tok-Secret-81d2e7';
const EXPIRES_IN_S = 6;

t.test('a container reads a not-yet-fetched layer after every token it had expired', async (t) => {
  const h = createHarness(t, 'clip-tok-');
  const tokenDir = join(h.root, 'token');
  mkdirSync(tokenDir, { recursive: true });
  const tokens = await startTokenServer({ dir: tokenDir, username: USER, password: PASSWORD, expiresInS: EXPIRES_IN_S });
  t.teardown(() => tokens.close());
  const secured = await h.startRegistry({ name: 'secured', token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  const anon = await httpStatus(`${secured.url}/v2/`);
  t.equal(anon.status, 401, 'the registry refuses anonymous access');
  t.match(anon.wwwAuthenticate, /^Bearer realm=/, 'and sends clients to the token service');

  const image = await pushImage(await buildImage(pathImageSpec('tok-app')), { hostPort: secured.hostPort, creds: { username: USER, password: PASSWORD } });
  const indexed = await indexWithCredentials(h, image.ref, { username: USER, password: PASSWORD });
  t.equal(indexed.code, 0, `clip index: ${indexed.stderr.slice(-300)}`);

  // The CRI proxy is the only credential source; no background completion, so the second layer
  // is fetched only when the container reads it.
  const node = await startCriNode(h, { plainHttpRegistries: [secured.hostPort], fetchOnlyWhenRead: true });
  const { c } = node;
  const cri = (args: string[]) => node.crictl(args, { viaProxy: false });

  const mark = secured.accessLogLines().length;
  await node.pull(image.ref, { creds: { username: USER, password: PASSWORD } });
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
    await node.crictl(['rmp', '-f', podId], { allowFailure: true });
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
  const refusedNow = await httpStatus(`${secured.url}/v2/${image.ref.split('/').slice(1).join('/').replace(/:[^:]+$/, '')}/manifests/latest`, { authorization: `Bearer ${stale.token}` });
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

  // Every file under the test root: the logs of clip, containerd and the registry, their state and caches.
  const secrets: Record<string, string> = { password: PASSWORD };
  tokens.issued().forEach((x, i) => {
    secrets[`token ${i}`] = x.token;
    secrets[`token ${i} signature`] = x.token.split('.')[2]!;
  });
  const leaks = Object.entries(filesHoldingSecrets(h.root, secrets)).flatMap(([what, files]) => files.map((f) => `${what} in ${f}`));
  t.same(leaks, [], `neither the password nor any of ${tokens.issued().length} issued tokens is in a file under the test root`);
});
