/**
 * A registry behind a token service whose tokens expire after a few seconds (basic auth at the
 * token service, bearer tokens at the registry), end to end through containerd 2.x (issue 16's
 * Done-when, the token rows; `token-expiry.test.ts` covers the same registry with a pull secret
 * through clip's CRI proxy). clip's only credential source is a docker credential helper
 * (config.json `credHelpers`):
 * - `crictl pull --creds` straight to containerd's CRI (the kubelet's pull secret never reaches
 *   clip), a pod's container reads a file of the image's first layer;
 * - `clip-snapshotter pull` with the node's config, a container reads a file of the first layer;
 * then, once every token issued so far has expired (polled from the token service, never slept),
 * new containers of both images read files of their second layers, which clip had not fetched:
 * clip gets new tokens with the helper's credentials. No password, basic-auth value or issued
 * token appears in any file under the test's root or in any command output.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import {
  createHarness, filesHoldingSecrets, httpStatus, indexWithCredentials, runClipCli, startCriNode, startTokenServer, waitUntil, writeCredentialHelper,
  type CommandResult,
} from '../harness/index.js';
import { buildImage, pushImage, type PushedImage } from '../images/index.js';
import { criRun, layerBytesSince, observeLayers, pathImageSpec } from '../containerd2/pull-paths.js';

t.setTimeout(900_000);

const CREDS = { username: `tok-user-${randomBytes(4).toString('hex')}`, password: `tok-pw-${randomBytes(12).toString('hex')}` };
const EXPIRES_IN_S = 6;

t.test('a token-service registry with expiring tokens: crictl with a credential helper and clip-snapshotter pull, files read after every token expired', async (t) => {
  const h = createHarness(t, 'clip-toksvc-');
  const tokenDir = join(h.root, 'token');
  mkdirSync(tokenDir, { recursive: true });
  const tokens = await startTokenServer({ dir: tokenDir, ...CREDS, expiresInS: EXPIRES_IN_S });
  t.teardown(() => tokens.close());
  const reg = await h.startRegistry({ name: 'secured', token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  t.equal((await httpStatus(`${reg.url}/v2/`)).status, 401, 'the registry refuses anonymous access');

  const push = async (name: string): Promise<PushedImage> => pushImage(await buildImage(pathImageSpec(name)), { hostPort: reg.hostPort, creds: CREDS });
  const images = { cri: await push('toksvc-cri-helper'), clip: await push('toksvc-clippull') };
  for (const image of Object.values(images)) {
    const indexed = await indexWithCredentials(h, image.ref, CREDS);
    t.equal(indexed.code, 0, `clip index ${image.name}: ${indexed.stderr.slice(-300)}`);
  }

  const helper = writeCredentialHelper(join(h.root, 'helper'), 'cliptok', { [reg.hostPort]: CREDS });
  // No background completion: a second layer is fetched only when a container reads it.
  const node = await startCriNode(h, {
    plainHttpRegistries: [reg.hostPort],
    daemon: { dockerConfig: helper.dockerConfigFor([reg.hostPort]) },
    env: helper.env,
    fetchOnlyWhenRead: true,
  });
  const { c } = node;
  const outputs: string[] = [];
  const keep = (r: CommandResult): CommandResult => {
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  const secondLayers = [images.cri.layers[1]!.digest, images.clip.layers[1]!.digest];
  let ctrSeq = 0;
  const ctrRun = async (ref: string, path: string): Promise<string> =>
    keep(await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `toksvc-${++ctrSeq}`, 'cat', path], { timeoutMs: 120_000 })).stdout;

  const mark = reg.accessLogLines().length;
  const pulled = keep(await node.pull(images.cri.ref, { creds: CREDS, viaProxy: false, allowFailure: true }));
  t.equal(pulled.code, 0, `crictl pull --creds straight to containerd${pulled.code === 0 ? '' : `: ${pulled.stderr.slice(-400)}`}`);
  t.equal((await observeLayers(t, c, images.cri, 'k8s.io')).remote, images.cri.layers.length, 'crictl: every layer is mounted lazily');
  const clipPulled = keep(await runClipCli(['pull', images.clip.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--config', node.daemonConfigPath],
    { allowFailure: true, timeoutMs: 180_000, env: helper.env }));
  t.equal(clipPulled.code, 0, `clip-snapshotter pull: ${clipPulled.stderr.slice(-400)}`);
  t.match(JSON.parse(clipPulled.stdout || '{}'), { lazy: images.clip.layers.length, full: 0 }, 'clip-snapshotter pull: every layer prepared lazily');
  t.equal(layerBytesSince(reg, mark, [...images.cri.layers, ...images.clip.layers].map((l) => l.digest)), 0, 'neither pull fetched layer bytes');

  t.equal(await criRun(h, c, images.cri.ref, ['cat', '/etc/clip-path']), 'toksvc-cri-helper\n', 'a pod read the first layer of the crictl-pulled image');
  t.equal(await ctrRun(images.clip.ref, '/etc/clip-path'), 'toksvc-clippull\n', 'a container read the first layer of the clip-pulled image');
  t.equal(layerBytesSince(reg, mark, secondLayers), 0, 'the second layers are still unfetched');
  t.ok(helper.calls().length >= 1 && helper.calls().every((x) => x === reg.hostPort), `clip asked the helper for this registry (${helper.calls().length} calls)`);

  const beforeExpiry = tokens.issued();
  const lastExpiry = Math.max(...beforeExpiry.map((x) => x.expiresAtMs));
  await waitUntil('every token issued so far has expired', async () => Date.now() > lastExpiry + 1000, 120_000, 200);
  const repo = images.clip.ref.slice(images.clip.ref.indexOf('/') + 1).replace(/:[^:]+$/, '');
  t.equal((await httpStatus(`${reg.url}/v2/${repo}/manifests/latest`, { authorization: `Bearer ${beforeExpiry[beforeExpiry.length - 1]!.token}` })).status, 401,
    `the registry refuses the last token issued (${beforeExpiry.length} issued so far, all expired)`);

  const readMark = reg.accessLogLines().length;
  const refusedBefore = tokens.refused();
  t.equal(await criRun(h, c, images.cri.ref, ['cat', '/data/hello.txt']), 'lazy hello\n', 'after expiry a new pod read the unfetched second layer of the crictl-pulled image');
  t.equal(await ctrRun(images.clip.ref, '/data/hello.txt'), 'lazy hello\n', 'after expiry a new container read the unfetched second layer of the clip-pulled image');
  t.ok(tokens.issued().length > beforeExpiry.length, `new tokens were issued after expiry (${tokens.issued().length - beforeExpiry.length})`);
  t.equal(tokens.refused(), refusedBefore, 'the token service refused nothing after expiry');
  // The registry writes its access-log line after the response: wait (bounded) for both.
  for (const digest of secondLayers) {
    const fetched = await waitUntil(`the registry logged ${digest}`, async () => layerBytesSince(reg, readMark, [digest]) > 0, 30_000, 200).then(() => true, () => false);
    t.ok(fetched, `second layer ${digest.slice(7, 19)} came from the registry after the tokens expired`);
  }

  const secrets: Record<string, string> = { password: CREDS.password, 'basic-auth value': Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64') };
  tokens.issued().forEach((x, i) => {
    secrets[`token ${i}`] = x.token;
    secrets[`token ${i} signature`] = x.token.split('.')[2]!;
  });
  const found = filesHoldingSecrets(h.root, secrets);
  const written = (f: string): boolean => f === 'helper/bin/docker-credential-cliptok' || /^ci-\d+\/config\.json$/.test(f);
  t.ok(found.password!.includes('helper/bin/docker-credential-cliptok'), 'control: the search finds the password where the test wrote it');
  const leaks = Object.entries(found).flatMap(([what, files]) => files.filter((f) => !written(f)).map((f) => `${what} in ${f}`));
  t.same(leaks, [], `no password, auth value or any of ${tokens.issued().length} tokens in a file the components wrote`);
  t.same(Object.entries(secrets).filter(([, s]) => outputs.some((o) => o.includes(s))).map(([w]) => w), [], 'nor in any command output');
});
