/**
 * Credentials exhausted, end to end: a layer read whose every credential source is refused fails
 * promptly with CLIP_REGISTRY_CREDENTIALS_REFUSED and a metric, never hangs. A lazy pull through
 * the CRI proxy (the kept credentials are right); a container reads the image's first layer; the
 * daemon restarts — kept credentials live in memory only, so they are gone — and its one other
 * source, a docker config.json, holds a wrong password. A second container needing the second,
 * still unfetched layer is refused promptly (at its Prepare's layer check or at the read); the daemon logs the code and counts
 * `clip_registry_auth_failures_total`; the next `crictl pull --creds` brings the credentials back
 * and a third container reads the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createHarness, filesHoldingSecrets, freePort, indexWithCredentials, startCriNode } from '../harness/index.js';
import { buildImage, pushImage } from '../images/index.js';
import { criRun, layerBytesSince, observeLayers, pathImageSpec } from '../containerd2/pull-paths.js';

const USER = 'exhausted-user';
const PASSWORD = 'right-Secret-4c1b0a';
const WRONG = 'wrong-Secret-9e7d33';

t.test('refused by every source: a prompt read error, a code and a metric; a new pull heals it', async (t) => {
  const h = createHarness(t, 'clip-exh-');
  const secured = await h.startRegistry({ name: 'secured', htpasswd: { username: USER, password: PASSWORD } });
  const image = await pushImage(await buildImage(pathImageSpec('exh-app')), { hostPort: secured.hostPort, creds: { username: USER, password: PASSWORD } });
  const indexed = await indexWithCredentials(h, image.ref, { username: USER, password: PASSWORD });
  t.equal(indexed.code, 0, `clip index: ${indexed.stderr.slice(-300)}`);

  const nodeDockerConfig = join(h.root, 'node-docker-config.json');
  writeFileSync(nodeDockerConfig, JSON.stringify({ auths: { [secured.hostPort]: { auth: Buffer.from(`${USER}:${WRONG}`).toString('base64') } } }));
  const metricsPort = await freePort();
  const node = await startCriNode(h, {
    plainHttpRegistries: [secured.hostPort],
    fetchOnlyWhenRead: true,
    daemon: {
      dockerConfig: nodeDockerConfig,
      metricsAddress: `127.0.0.1:${metricsPort}`,
      // In process: the restart below must take the kept credentials with it (a separate FUSE
      // server, which holds them, outlives a daemon restart).
      fuseServerMode: 'in_process',
    },
  });
  const { c, snap } = node;
  const pull = () => node.pull(image.ref, { creds: { username: USER, password: PASSWORD } });

  const mark = secured.accessLogLines().length;
  await pull();
  const [, app] = image.layers.map((l) => l.digest) as [string, string];
  t.equal(layerBytesSince(secured, mark, image.layers.map((l) => l.digest)), 0, 'the pull fetched no layer bytes');
  t.equal((await observeLayers(t, c, image, 'k8s.io')).remote, image.layers.length, 'every layer is mounted lazily');
  t.equal(await criRun(h, c, image.ref, ['cat', '/etc/clip-path']), 'exh-app\n', 'a container read the first layer with the kept credentials');
  t.equal(layerBytesSince(secured, mark, [app]), 0, 'the second layer is still unfetched');

  await snap.restart();
  await c.waitForSnapshotter('clip');
  // Either the layer check of the container's Prepare or the read itself is refused: both must
  // end promptly (criRun's own deadlines), with the cause named.
  const started = Date.now();
  const failed = await criRun(h, c, image.ref, ['cat', '/data/hello.txt']).then(
    (out) => ({ where: 'read', text: out }),
    (err: unknown) => ({ where: 'create', text: String((err as Error).message) }),
  );
  t.comment(`refused at ${failed.where} after ${Date.now() - started} ms`);
  t.notMatch(failed.text, /lazy hello/, 'the file was not read');
  if (failed.where === 'create') t.match(failed.text, /credentials refused after every credential source was tried/, 'containerd relays the cause');
  else t.match(failed.text, /cat: .*(Operation not permitted|Input\/output error)/i, `the reader got an error: ${failed.text.trim()}`);
  const log = readFileSync(snap.logPath, 'utf8');
  t.match(log, /CLIP_REGISTRY_CREDENTIALS_REFUSED/, 'the daemon log names the code');
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const m = /^clip_registry_auth_failures_total\{[^}]*stage="request"[^}]*status="401"[^}]*\} (\d+)/m.exec(metrics) ?? /^clip_registry_auth_failures_total\{[^}]*status="401"[^}]*stage="request"[^}]*\} (\d+)/m.exec(metrics);
  t.ok(m && Number(m[1]) >= 1, `clip_registry_auth_failures_total counted it: ${m?.[0] ?? 'absent'}`);

  await pull();
  t.equal(await criRun(h, c, image.ref, ['cat', '/data/hello.txt']), 'lazy hello\n', 'after a new pull with credentials the file reads');
  // Every file under the test root (logs of clip, containerd and the registry, state, caches); the
  // wrong password's auth value is in the node's docker config the test wrote, the right one's in the CI job's.
  const basic = (pw: string): string => Buffer.from(`${USER}:${pw}`).toString('base64');
  const found = filesHoldingSecrets(h.root, { password: PASSWORD, 'wrong password': WRONG, 'basic value': basic(PASSWORD), 'wrong basic value': basic(WRONG) });
  t.same(found['wrong basic value'], ['node-docker-config.json'], 'control: the search finds the wrong auth value where the test wrote it, and only there');
  t.same([...found.password!, ...found['wrong password']!], [], 'neither password is in any file under the test root');
  t.same(found['basic value']!.filter((f) => !/^ci-\d+\/config\.json$/.test(f)), [], 'the right auth value is in no file the components wrote');
});
