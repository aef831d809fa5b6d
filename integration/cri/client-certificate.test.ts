/**
 * A registry that requires a client certificate (and basic auth), end to end through containerd
 * 2.x's CRI (issue 16's Done-when, the mTLS row): the node's hosts dir holds the registry's
 * hosts.toml with its CA and two `client` pairs (the first one untrusted by the registry), as a
 * Kubernetes node configures containerd (`config_path`); containerd's CRI pulls with it, and clip's
 * lazy reads use the same file and must present the accepted pair, as containerd does. Three
 * images, one per way credentials arrive, each pulled lazily and then read by a container:
 * - `crictl pull --creds` through clip's CRI proxy (a pull secret; clip keeps it);
 * - `crictl pull --creds` straight to containerd (clip never sees it) while clip's docker
 *   config.json sends the registry to a credential helper;
 * - `clip-snapshotter pull` with the node's config (the same helper).
 * No password, basic-auth value or client key appears in any file under the test's root (every
 * log, the daemon's state, containerd's root) or in any command output, outside the files the test
 * wrote itself.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import {
  createHarness, filesHoldingSecrets, indexWithCredentials, makeTestPki, runClipCli, runCommand, startCriNode, writeCredentialHelper,
  type CommandResult,
} from '../harness/index.js';
import { buildImage, pushImage, type PushedImage } from '../images/index.js';
import { criRun, layerBytesSince, observeLayers, pathImageSpec } from '../containerd2/pull-paths.js';

t.setTimeout(900_000);

const CREDS = { username: `mtls-user-${randomBytes(4).toString('hex')}`, password: `mtls-pw-${randomBytes(12).toString('hex')}` };

t.test('a client-certificate registry serves lazy pulls by crictl with pull secrets, with a credential helper, and by clip-snapshotter pull', async (t) => {
  const h = createHarness(t, 'clip-crimtls-');
  const pki = await makeTestPki(join(h.root, 'pki'));
  const reg = await h.startRegistry({
    name: 'mtls',
    htpasswd: CREDS,
    tls: { certPath: pki.serverCertPath, keyPath: pki.serverKeyPath, caPath: pki.caPath, clientCaPath: pki.caPath, probeClient: { certPath: pki.clientCertPath, keyPath: pki.clientKeyPath } },
  });
  const curl = (extra: string[]): Promise<CommandResult> =>
    runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', pki.caPath, ...extra, `${reg.url}/v2/`], { allowFailure: true });
  const noCert = await curl(['-u', `${CREDS.username}:${CREDS.password}`]);
  t.not(noCert.stdout, '200', `with the password but without a client certificate the registry refuses (curl: ${noCert.stdout}, exit ${noCert.code})`);
  const noPassword = await curl(['--cert', pki.clientCertPath, '--key', pki.clientKeyPath]);
  t.equal(noPassword.stdout, '401', 'with the certificate but without the password it refuses too');

  // skopeo's cert dir: client.cert + client.key.
  const skopeoCerts = join(h.root, 'skopeo-certs');
  mkdirSync(skopeoCerts, { recursive: true });
  writeFileSync(join(skopeoCerts, 'client.cert'), readFileSync(pki.clientCertPath));
  writeFileSync(join(skopeoCerts, 'client.key'), readFileSync(pki.clientKeyPath));
  const push = async (name: string): Promise<PushedImage> =>
    pushImage(await buildImage(pathImageSpec(name)), { hostPort: reg.hostPort, creds: CREDS, certDir: skopeoCerts });
  const images = { secret: await push('mtls-cri-secret'), helper: await push('mtls-cri-helper'), clip: await push('mtls-cri-clippull') };

  // The layout containerd 1.6 to 2.x and clip all read: the server as a [host] table with ca and
  // client. Two pairs, the first from a CA the registry does not trust: containerd presents the
  // one the registry's certificate request accepts, and so must clip.
  const untrusted = await makeTestPki(join(h.root, 'pki-untrusted'), 'clip-untrusted-ca');
  const hostsToml = `server = "https://${reg.hostPort}"\n\n[host."https://${reg.hostPort}"]\n  capabilities = ["pull", "resolve", "push"]\n  ca = "${pki.caPath}"\n` +
    `  client = [["${untrusted.clientCertPath}", "${untrusted.clientKeyPath}"], ["${pki.clientCertPath}", "${pki.clientKeyPath}"]]\n`;
  const wrongFirst = await curl(['--cert', untrusted.clientCertPath, '--key', untrusted.clientKeyPath, '-u', `${CREDS.username}:${CREDS.password}`]);
  t.not(wrongFirst.stdout, '200', `the first listed certificate is refused (curl: ${wrongFirst.stdout}, exit ${wrongFirst.code})`);
  const ciHosts = join(h.root, 'ci-hosts');
  mkdirSync(join(ciHosts, reg.hostPort), { recursive: true });
  writeFileSync(join(ciHosts, reg.hostPort, 'hosts.toml'), hostsToml);
  for (const image of Object.values(images)) {
    const indexed = await indexWithCredentials(h, image.ref, CREDS, ciHosts);
    t.equal(indexed.code, 0, `clip index ${image.name}: ${indexed.stderr.slice(-300)}`);
  }

  const helper = writeCredentialHelper(join(h.root, 'helper'), 'cliptest', { [reg.hostPort]: CREDS });
  const node = await startCriNode(h, {
    hostsToml: { [reg.hostPort]: hostsToml },
    daemon: { dockerConfig: helper.dockerConfigFor([reg.hostPort]) },
    env: helper.env,
  });
  const { c, snap } = node;
  const outputs: string[] = [];
  const keep = (r: CommandResult): CommandResult => {
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  /** Pulled lazily (no layer bytes), every layer remote, then a container's read fetches layer bytes. */
  const checkLazyThenRead = async (tt: Test, image: PushedImage, mark: number, run: () => Promise<string>): Promise<void> => {
    const digests = image.layers.map((l) => l.digest);
    tt.equal(layerBytesSince(reg, mark, digests), 0, 'the pull fetched no layer bytes');
    const afterPull = reg.accessLogLines().length;
    tt.equal(await run(), 'lazy hello\n', 'a container read a file of the image');
    tt.ok(layerBytesSince(reg, afterPull, digests) > 0, 'its read fetched layer bytes from the client-certificate registry after the pull');
  };

  // First, so that every call the helper gets is this image's (the daemon asks every source of a
  // host when it lists candidates, and a helper's answer is cached for a minute).
  t.test('crictl pull straight to containerd; clip reads with the credential helper', async (tt) => {
    const callsBefore = helper.calls().length;
    tt.equal(callsBefore, 0, 'the helper was not asked before');
    const mark = reg.accessLogLines().length;
    const pulled = keep(await node.pull(images.helper.ref, { creds: CREDS, viaProxy: false, allowFailure: true }));
    tt.equal(pulled.code, 0, `crictl pull --creds to containerd${pulled.code === 0 ? '' : `: ${pulled.stderr.slice(-400)}`}`);
    tt.equal((await observeLayers(tt, c, images.helper, 'k8s.io')).remote, images.helper.layers.length, 'every layer is mounted lazily');
    const repository = images.helper.ref.slice(images.helper.ref.indexOf('/') + 1).replace(/:[^:]+$/, '');
    tt.notOk(snap.log().split('\n').some((l) => l.includes('CRI pull credentials kept') && l.includes(repository)), 'the proxy kept nothing for this image (the pull did not pass it)');
    await checkLazyThenRead(tt, images.helper, mark, () => criRun(h, c, images.helper.ref, ['cat', '/data/hello.txt']));
    const calls = helper.calls().slice(callsBefore);
    tt.ok(calls.length >= 1 && calls.every((x) => x === reg.hostPort), `the daemon asked the helper for this registry (${calls.length} calls): with the proxy holding nothing for this image, the helper's answer is what read it`);
  });

  t.test('crictl pull --creds through the CRI proxy', async (tt) => {
    const mark = reg.accessLogLines().length;
    const pulled = keep(await node.pull(images.secret.ref, { creds: CREDS, allowFailure: true }));
    tt.equal(pulled.code, 0, `containerd's CRI pulled with the client certificate from its hosts dir${pulled.code === 0 ? '' : `: ${pulled.stderr.slice(-400)}`}`);
    tt.equal((await observeLayers(tt, c, images.secret, 'k8s.io')).remote, images.secret.layers.length, 'every layer is mounted lazily');
    await checkLazyThenRead(tt, images.secret, mark, () => criRun(h, c, images.secret.ref, ['cat', '/data/hello.txt']));
  });

  t.test('clip-snapshotter pull with the node config (hosts.toml client, credential helper)', async (tt) => {
    const mark = reg.accessLogLines().length;
    const pulled = keep(await runClipCli(['pull', images.clip.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--config', node.daemonConfigPath],
      { allowFailure: true, timeoutMs: 180_000, env: helper.env }));
    tt.equal(pulled.code, 0, `clip-snapshotter pull: ${pulled.stderr.slice(-400)}`);
    tt.match(JSON.parse(pulled.stdout || '{}'), { lazy: images.clip.layers.length, full: 0 }, 'every layer prepared lazily');
    await checkLazyThenRead(tt, images.clip, mark, async () =>
      keep(await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), images.clip.ref, 'mtls-clip-pull', 'cat', '/data/hello.txt'], { timeoutMs: 120_000 })).stdout);
  });

  t.test('no secret in any file under the test root or in any output', async (tt) => {
    const clientKey = readFileSync(pki.clientKeyPath, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('-----')).join('');
    const secrets = {
      password: CREDS.password,
      'basic-auth value': Buffer.from(`${CREDS.username}:${CREDS.password}`).toString('base64'),
      'client key': clientKey.slice(0, 48),
    };
    // Where the test itself put them: the PKI, skopeo's cert dir, the helper program, the CI job's config.json.
    const written = (f: string): boolean => /^(pki|pki-untrusted|skopeo-certs)\//.test(f) || f === 'helper/bin/docker-credential-cliptest' || /^ci-\d+\/config\.json$/.test(f);
    const found = filesHoldingSecrets(h.root, secrets);
    tt.ok(found.password!.includes('helper/bin/docker-credential-cliptest'), 'control: the search finds the password where the test wrote it');
    tt.ok(snap.log().includes(images.helper.layers[1]!.digest), 'control: the daemon log covers the layers read');
    const probes = snap.log().split('\n').filter((l) => l.includes('registry client certificate probed')).map((l) => JSON.parse(l) as { client_certificate: number; result: string });
    tt.ok(probes.some((p) => p.client_certificate === 1 && p.result === 'refused') && probes.some((p) => p.client_certificate === 2 && p.result === 'accepted'),
      `clip found the accepted pair as containerd does: ${JSON.stringify(probes)}`);
    for (const [what, files] of Object.entries(found)) {
      tt.same(files.filter((f) => !written(f)), [], `${what}: in no file the components wrote`);
      tt.notOk(outputs.some((o) => o.includes(secrets[what as keyof typeof secrets])), `${what}: in no command output`);
    }
  });
});
