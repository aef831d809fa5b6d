/** The pull-path matrix for one containerd 2.x version (see pull-paths.ts for what each path checks). */
import type { Test } from 'tap';
import { join } from 'node:path';
import { createHarness, goModulePins, type Containerd, type Harness, type Registry } from '../harness/index.js';
import type { PushedImage } from '../images/index.js';
import {
  LABEL_CRI_IMAGE_REF,
  LABEL_SNAPSHOT_REF,
  checkNewLabels,
  clipCli,
  clipConfig,
  compareWithOverlayfs,
  criRun,
  ctrRun,
  indexImage,
  layerBytesSince,
  transferPull,
  observeLayers,
  outcomeTable,
  pathImageSpec,
  pauseImageSpec,
  pushSpec,
  type PathOutcome,
} from './pull-paths.js';

const CRI_NS = 'k8s.io';
const TEST_NS = 'clip-test';

interface Stack {
  c: Containerd;
  snapLog: () => string;
}

async function startStack(h: Harness, registry: Registry, version: string, name: 'transfer' | 'local', sandboxImage: string): Promise<Stack> {
  const dir = join(h.root, `c-${name}`);
  const clipRoot = join(h.root, `clip-${name}`);
  // clip resolves snapshot.ref-only Prepares through this containerd (its socket path is fixed by dirName).
  const config = clipConfig(join(h.root, `clip-${name}.toml`), join(dir, 'containerd.sock'), join(dir, 'hosts'));
  const snap = await h.startSnapshotter({ root: join(clipRoot, 'root'), address: join(clipRoot, 'clip.sock'), extraArgs: ['--config', config] });
  const c = await h.startContainerd({
    dirName: `c-${name}`,
    version,
    snapshotters: { clip: snap.address },
    plainHttpRegistries: [registry.hostPort],
    proxyOptions: { clip: name === 'transfer' ? { exports: { enable_remote_snapshot_annotations: 'true' } } : {} },
    cri: { snapshotter: 'clip', disableSnapshotAnnotations: name === 'transfer', sandboxImage },
  });
  return { c, snapLog: () => snap.log() };
}

/**
 * Pull `image` by `pull()`, then record: labels containerd sent, lazy layers, layer bytes the pull
 * fetched; run a container; compare the rootfs with overlayfs.
 */
async function pullPath(
  t: Test,
  h: Harness,
  registry: Registry,
  c: Containerd,
  version: string,
  path: string,
  image: PushedImage,
  namespace: string,
  pull: () => Promise<void>,
  run: () => Promise<string>,
  expectLazy: boolean,
  viaContainerdUnpacker = true,
): Promise<PathOutcome> {
  await indexImage(t, image);
  const mark = registry.accessLogLines().length;
  await pull();
  const digests = image.layers.map((l) => l.digest);
  const bytesAtPull = layerBytesSince(registry, mark, digests);
  const layerBytes = image.layers.reduce((n, l) => n + l.size, 0);
  const { remote, labels } = await observeLayers(t, c, image, namespace);
  if (expectLazy) {
    t.equal(remote, image.layers.length, `${path}: every layer mounted lazily`);
    t.equal(bytesAtPull, 0, `${path}: the pull fetched no layer bytes (of ${layerBytes})`);
  } else {
    t.equal(remote, 0, `${path}: no layer is lazy (containerd fetched the layers before unpacking)`);
  }
  if (viaContainerdUnpacker) checkNewLabels(t, version, image, labels);
  t.equal(await run(), 'lazy hello\n', `${path}: the container read its file`);
  await compareWithOverlayfs(t, h, c, image, namespace, `${version}-${path}`);
  const top = labels[labels.length - 1] ?? {};
  return { version, path, remoteLayers: remote, layers: image.layers.length, bytesAtPull, layerBytes, labelKeys: Object.keys(top).sort() };
}

/** Every pull path on containerd `CONTAINERD2_VERSIONS[versionIndex]`, as one subtest of `t`. */
export async function pullPathsSuite(t: Test, versionIndex: number): Promise<void> {
  const version = goModulePins().containerd2Versions[versionIndex];
  if (!version) throw new Error(`integration/go-modules.env lists no containerd 2.x version #${versionIndex}`);
  // Inside one subtest: tap ends a root test whose queue is empty while setup is still awaited.
  await t.test(`containerd ${version}: every pull path`, (t) => pullPaths(t, version));
}

async function pullPaths(t: Test, version: string): Promise<void> {
  const h = createHarness(t, 'clip-c2-');
  const registry = await h.startRegistry();
  const tag = version.replace(/\W/g, '');
  const img = (p: string): Promise<PushedImage> => pushSpec(pathImageSpec(`p-${tag}-${p}`), registry);
  const outcomes: PathOutcome[] = [];
  const cat = ['cat', '/data/hello.txt'];

  const pause = await pushSpec(pauseImageSpec(`pause-${tag}`), registry);
  const A = await startStack(h, registry, version, 'transfer', pause.ref);
  t.teardown(() => {
    if (process.env.CLIP_E2E_SHOW_LOGS) process.stderr.write(A.snapLog());
  });
  const a = A.c;

  await t.test(`${version}: ctr images pull (transfer service, clip exports enable_remote_snapshot_annotations)`, async (t) => {
    const image = await img('ctr-transfer');
    const o = await pullPath(t, h, registry, a, version, 'ctr pull (transfer, annotations)', image, TEST_NS,
      async () => void (await a.ctr(['images', 'pull', '--plain-http', '--hosts-dir', a.hostsDir, '--snapshotter', 'clip', image.ref])),
      () => ctrRun(a, image.ref, cat), true);
    outcomes.push(o);
    t.ok(o.labelKeys.includes(LABEL_CRI_IMAGE_REF), 'the transfer service added the cri.* layer labels');
  });

  await t.test(`${version}: ctr images pull --local`, async (t) => {
    const image = await img('ctr-local');
    outcomes.push(await pullPath(t, h, registry, a, version, 'ctr pull --local', image, TEST_NS,
      async () => void (await a.ctr(['images', 'pull', '--local', '--plain-http', '--hosts-dir', a.hostsDir, '--snapshotter', 'clip', image.ref])),
      () => ctrRun(a, image.ref, cat), false));
  });

  await t.test(`${version}: nerdctl >= 2.3's transfer-service pull (Go client), then run`, async (t) => {
    const image = await img('nerdctl');
    outcomes.push(await pullPath(t, h, registry, a, version, "transfer-service client (nerdctl >= 2.3's pull)", image, TEST_NS,
      async () => {
        const res = await transferPull(a, image.ref);
        t.equal(res.code, 0, `transferpull: ${res.stderr.slice(-400)}`);
      },
      () => ctrRun(a, image.ref, cat), true));
  });

  await t.test(`${version}: CRI via crictl (transfer service)`, async (t) => {
    const image = await img('cri-transfer');
    outcomes.push(await pullPath(t, h, registry, a, version, 'crictl pull (transfer)', image, CRI_NS,
      async () => void (await a.crictl(['pull', image.ref])),
      () => criRun(h, a, image.ref, cat), true));
    t.match(a.version, /^v2/);
  });

  await t.test(`${version}: clip-snapshotter pull`, async (t) => {
    const image = await img('clip-pull');
    outcomes.push(await pullPath(t, h, registry, a, version, 'clip-snapshotter pull', image, TEST_NS,
      async () => {
        const res = await clipCli(['pull', image.ref, '--address', a.address, '--namespace', TEST_NS, '--snapshotter', 'clip', '--plain-http']);
        t.equal(res.code, 0, `clip pull: ${res.stderr.slice(-400)}`);
      },
      () => ctrRun(a, image.ref, cat), true, false));
    // clip's own puller prepares layers itself (CRI's labels, no containerd unpacker): no 2.3 labels.
  });

  const B = await startStack(h, registry, version, 'local', pause.ref);
  const b = B.c;

  await t.test(`${version}: CRI via crictl (CRI's local pull, disable_snapshot_annotations = false)`, async (t) => {
    const image = await img('cri-local');
    outcomes.push(await pullPath(t, h, registry, b, version, 'crictl pull (local)', image, CRI_NS,
      async () => void (await b.crictl(['pull', image.ref])),
      () => criRun(h, b, image.ref, cat), true));
  });

  await t.test(`${version}: ctr images pull (transfer service, no annotations: content store)`, async (t) => {
    const image = await img('ctr-plain');
    const o = await pullPath(t, h, registry, b, version, 'ctr pull (transfer, snapshot.ref only)', image, TEST_NS,
      async () => void (await b.ctr(['images', 'pull', '--plain-http', '--hosts-dir', b.hostsDir, '--snapshotter', 'clip', image.ref])),
      () => ctrRun(b, image.ref, cat), true);
    outcomes.push(o);
    t.ok(o.labelKeys.includes(LABEL_SNAPSHOT_REF) && !o.labelKeys.includes(LABEL_CRI_IMAGE_REF), 'only snapshot.ref (and 2.3+ labels) arrived');
  });

  t.comment(`pull paths on containerd ${version}:\n${outcomeTable(outcomes)}`);
}
