/**
 * Every way containerd 2.x pulls an image into clip, against the real binaries built from Go
 * modules (integration/go-modules.env). For each path: the labels containerd actually sent to
 * clip's Prepare (kept on the committed snapshot, printed), whether the pull fetched layer bytes
 * (registry access log: bytes of GETs of this image's layer blobs between the start of the pull and
 * its end), a container run, and the rootfs compared with containerd's overlayfs for the same image.
 *
 * Two stacks per version, because the CRI pull mode is a daemon setting:
 * - `transfer`: CRI pulls through the transfer service (disable_snapshot_annotations = true, the 2.x
 *   default) and clip exports `enable_remote_snapshot_annotations = "true"`, so the transfer
 *   service's unpacker adds the `cri.*` layer labels for every client (ctr, nerdctl >= 2.3, CRI).
 * - `local`: CRI falls back to its own pull (disable_snapshot_annotations = false) with the `cri.*`
 *   labels; clip exports nothing, so the transfer service sends only `snapshot.ref` (plus
 *   `diff-id`/`parent-chain-id` on 2.3+) and clip finds the layer through the content store.
 */
import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  diffManifests,
  imageManifest,
  REPO_ROOT,
  requireGoModuleBinary,
  runCommand,
  waitUntil,
  type Containerd,
  type Harness,
  type Registry,
} from '../harness/index.js';
import { addBusyboxRootfs, buildImage, pushImage, type ImageSpec, type PushedImage, type StagingTree } from '../images/index.js';
import { pseudoRandomBytes } from '../harness/pseudo-random.js';

const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const LABEL_DIFF_ID = 'containerd.io/snapshot/diff-id';
export const LABEL_PARENT_CHAIN_ID = 'containerd.io/snapshot/parent-chain-id';
export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_REMOTE = 'containerd.io/snapshot/remote';
const CRI_NAMESPACE = 'k8s.io';

/** Layer content that a full pull would have to fetch: 1 MiB the containers never read. */
function filler(seed: string, bytes = 1 << 20): Buffer {
  return pseudoRandomBytes(seed, bytes);
}

/**
 * An image whose every layer is new to the daemon (its first layer is busybox plus a marker), so
 * the pull path under test prepares every layer itself instead of finding it already present.
 * (The image cache keys on the spec's name and function sources, so the name must be unique.)
 */
export function pathImageSpec(name: string): ImageSpec {
  return {
    name,
    layers: [
      async (t: StagingTree) => {
        await addBusyboxRootfs(t);
        t.file('etc/clip-path', `${name}\n`);
      },
      async (t: StagingTree) => {
        t.file('data/hello.txt', 'lazy hello\n');
        t.file('data/unread.bin', filler(name));
        t.dir('data/empty');
        t.symlink('data/link', 'hello.txt');
      },
    ],
    config: { cmd: ['/bin/sh'] },
  };
}

export { pauseImageSpec } from '../images/index.js';

export async function pushSpec(spec: ImageSpec, registry: Registry): Promise<PushedImage> {
  return pushImage(await buildImage(spec), { hostPort: registry.hostPort });
}

export function chainIdsOf(image: PushedImage): string[] {
  const out: string[] = [];
  for (const l of image.layers) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? l.diffId : `sha256:${createHash('sha256').update(`${prev} ${l.diffId}`).digest('hex')}`);
  }
  return out;
}

/** Bytes the registry sent for GETs of `digests` since access-log line `mark`. */
export function layerBytesSince(registry: Registry, mark: number, digests: string[]): number {
  let total = 0;
  for (const line of registry.accessLogLines().slice(mark)) {
    if (!line.includes('"GET ') || !digests.some((d) => line.includes(`/blobs/${d}`))) continue;
    const m = /" (\d{3}) (\d+) /.exec(line);
    if (m && (m[1] === '200' || m[1] === '206')) total += Number(m[2]);
  }
  return total;
}

export async function clipCli(args: string[], timeoutMs = 180_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { allowFailure: true, timeoutMs });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Push the clip index artifact of `image` (what a CI step does after building an image). */
export async function indexImage(t: Test, image: PushedImage): Promise<void> {
  const res = await clipCli(['index', image.ref, '--plain-http', '--json']);
  t.equal(res.code, 0, `clip index ${image.name}: ${res.stderr.slice(-300)}`);
}

/** Labels of snapshot `name` in clip (`ctr snapshots info`), in `namespace`. */
export async function snapshotLabels(c: Containerd, name: string, namespace: string): Promise<Record<string, string>> {
  const res = await c.ctrIn(namespace, ['snapshots', '--snapshotter', 'clip', 'info', name], { allowFailure: true });
  if (res.code !== 0) return {};
  return (JSON.parse(res.stdout) as { Labels?: Record<string, string> }).Labels ?? {};
}

/** What one pull path did. */
export interface PathOutcome {
  version: string;
  path: string;
  /** Layers that became remote (lazily mounted) snapshots. */
  remoteLayers: number;
  layers: number;
  /** Layer-blob bytes the registry served during the pull. */
  bytesAtPull: number;
  /** Compressed size of all layers. */
  layerBytes: number;
  /** Label keys on the top layer's snapshot (what containerd sent, plus clip's and `remote`). */
  labelKeys: string[];
}

/** The labels containerd sent, layer by layer, read back from clip's committed snapshots. */
export async function observeLayers(t: Test, c: Containerd, image: PushedImage, namespace: string): Promise<{ remote: number; labels: Array<Record<string, string>> }> {
  const chains = chainIdsOf(image);
  const labels: Array<Record<string, string>> = [];
  let remote = 0;
  for (const chain of chains) {
    const l = await snapshotLabels(c, chain, namespace);
    labels.push(l);
    if (l[LABEL_REMOTE] === 'remote snapshot') remote++;
  }
  t.comment(`labels on ${image.name}'s top layer: ${JSON.stringify(labels[labels.length - 1] ?? {})}`);
  return { remote, labels };
}

/**
 * Checks the 2.3+ labels where containerd's unpacker sent the Prepare: diff-id is the layer's
 * diffID, parent-chain-id the parent's chain ID; older versions send neither.
 */
export function checkNewLabels(t: Test, version: string, image: PushedImage, labels: Array<Record<string, string>>): void {
  const chains = chainIdsOf(image);
  const has23 = versionAtLeast(version, 2, 3);
  labels.forEach((l, i) => {
    if (!(LABEL_SNAPSHOT_REF in l)) return; // not prepared through the unpacker (e.g. --local)
    if (has23) {
      t.equal(l[LABEL_DIFF_ID], image.layers[i]!.diffId, `${version}: layer ${i} carried diff-id`);
      if (i > 0) t.equal(l[LABEL_PARENT_CHAIN_ID], chains[i - 1], `${version}: layer ${i} carried parent-chain-id`);
    } else {
      t.notOk(l[LABEL_DIFF_ID], `${version}: no diff-id label before 2.3`);
    }
  });
}

export function versionAtLeast(version: string, major: number, minor: number): boolean {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  return Number(m[1]) > major || (Number(m[1]) === major && Number(m[2]) >= minor);
}

/** The rootfs clip serves for `image` equals overlayfs's (pulled afterwards for the comparison). */
export async function compareWithOverlayfs(t: Test, h: Harness, c: Containerd, image: PushedImage, namespace: string, label: string): Promise<void> {
  const dir = label.replace(/[^A-Za-z0-9.-]+/g, '_'); // mount(8) lines are split on spaces
  const clip = await imageManifest(c, image.ref, 'clip', join(h.root, `mnt-clip-${dir}`), namespace);
  await c.ctrIn(namespace, ['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', '--hosts-dir', c.hostsDir, image.ref]);
  const overlay = await imageManifest(c, image.ref, 'overlayfs', join(h.root, `mnt-ovl-${dir}`), namespace);
  t.same(diffManifests(overlay, clip, ['overlayfs', 'clip']), [], `${label}: clip rootfs identical to overlayfs (${clip.size} entries)`);
}

let runSeq = 0;

/** `ctr run` through clip; returns stdout. */
export async function ctrRun(c: Containerd, ref: string, cmd: string[]): Promise<string> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `p2-${process.pid}-${++runSeq}`, ...cmd]);
  return res.stdout;
}

/**
 * nerdctl >= 2.3's pull (integration/go/transferpull, built against this containerd version):
 * registry source, image store with one platform and WithUnpack(platform, clip), through the
 * transfer service. nerdctl itself is not buildable from the module proxy here.
 */
export async function transferPull(c: Containerd, ref: string): Promise<{ code: number; stderr: string }> {
  const bin = requireGoModuleBinary(join(REPO_ROOT, '.work', 'bin', `transferpull-${c.version}`));
  const res = await runCommand(bin, ['--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--hosts-dir', c.hostsDir, '--plain-http', ref], { allowFailure: true, timeoutMs: 300_000 });
  return { code: res.code ?? -1, stderr: res.stderr };
}

/** Run a container through CRI in a host-network pod and return what it printed. */
export async function criRun(h: Harness, c: Containerd, ref: string, cmd: string[]): Promise<string> {
  const n = ++runSeq;
  const dir = join(h.root, `cri-${n}`);
  mkdirSync(dir, { recursive: true });
  const pod = {
    metadata: { name: `clip-pod-${n}`, namespace: 'default', uid: `clip-pod-uid-${process.pid}-${n}`, attempt: 0 },
    log_directory: dir,
    linux: { cgroup_parent: '/clip-test', security_context: { namespace_options: { network: 2 } } },
  };
  const ctrCfg = { metadata: { name: `clip-ctr-${n}` }, image: { image: ref }, command: cmd, log_path: 'out.log', linux: {} };
  writeFileSync(join(dir, 'pod.json'), JSON.stringify(pod));
  writeFileSync(join(dir, 'ctr.json'), JSON.stringify(ctrCfg));
  const podId = (await c.crictl(['runp', join(dir, 'pod.json')])).stdout.trim();
  const id = (await c.crictl(['create', podId, join(dir, 'ctr.json'), join(dir, 'pod.json')])).stdout.trim();
  await c.crictl(['start', id]);
  await waitUntil(`CRI container ${id} exits`, async () => {
    const st = JSON.parse((await c.crictl(['inspect', '-o', 'json', id])).stdout) as { status?: { state?: string } };
    return st.status?.state === 'CONTAINER_EXITED';
  }, 120_000, 250);
  const log = join(dir, 'out.log');
  // CRI log lines: "<time> stdout F <text>"
  const out = existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' ')).join('\n') : '';
  await c.crictl(['stopp', podId], { allowFailure: true });
  await c.crictl(['rmp', '-f', podId], { allowFailure: true });
  return out === '' ? '' : `${out}\n`;
}

/** The clip config for a stack: content-store resolution through `containerdAddress`, hosts.toml for the port. */
export function clipConfig(path: string, containerdAddress: string, hostsDir: string | undefined): string {
  writeFileSync(path, `containerd_address = "${containerdAddress}"\ncontainerd_namespace = "clip-test"\n[registry]\n${hostsDir ? `config_path = "${hostsDir}"\n` : 'plain_http = true\n'}`);
  return path;
}

/** One line per outcome, for the test log and the notes. */
export function outcomeTable(outcomes: PathOutcome[]): string {
  return outcomes
    .map((o) => `${o.version} ${o.path}: ${o.remoteLayers}/${o.layers} layers lazy, ${o.bytesAtPull} of ${o.layerBytes} layer bytes fetched by the pull; labels: ${o.labelKeys.join(' ')}`)
    .join('\n');
}
