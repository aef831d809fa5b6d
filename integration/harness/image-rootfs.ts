/**
 * The root filesystem an image gives a container, as seen through a given snapshotter.
 *
 * Not `ctr images mount`: in containerd 1.6 it reads a global `--snapshotter` flag that ctr does
 * not define, so it always mounts through the default (overlayfs) snapshotter — a comparison
 * built on it compares overlayfs with itself. Instead: take a read-only View of the image's top
 * chainID through the named snapshotter (`ctr snapshots view`), mount what it returns exactly as
 * containerd would (`ctr snapshots mounts` prints the mount commands), walk it, undo both.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { Containerd } from './containerd.js';
import { runCommand } from './run-command.js';
import { snapshotRootfs, type Manifest } from './rootfs-manifest.js';

export interface MountedImage {
  target: string;
  /** Unmount, then remove the view snapshot. */
  unmount(): Promise<void>;
}

let viewSeq = 0;

/** `ctr` of `c` in `namespace` (the test namespace unless given; CRI's is `k8s.io`). */
function ctrOf(c: Containerd, namespace?: string): Containerd['ctr'] {
  return namespace === undefined ? c.ctr : (args, opts) => c.ctrIn(namespace, args, opts);
}

/** The chain ID of an image's top layer, from its config in containerd's content store. */
export async function topChainId(c: Containerd, ref: string, namespace?: string): Promise<string> {
  const ctr = ctrOf(c, namespace);
  const ls = await ctr(['images', 'ls']);
  const line = ls.stdout.split('\n').find((l) => l.split(/\s+/)[0] === ref);
  const manifestDigest = line?.split(/\s+/).find((f) => f.startsWith('sha256:'));
  if (!manifestDigest) throw new Error(`image ${ref} not in containerd: ${ls.stdout}`);
  let doc = JSON.parse((await ctr(['content', 'get', manifestDigest])).stdout) as { manifests?: Array<{ digest: string; platform?: { architecture?: string } }>; config?: { digest: string } };
  if (doc.manifests) {
    const m = doc.manifests.find((x) => (x.platform?.architecture ?? 'amd64') === 'amd64') ?? doc.manifests[0]!;
    doc = JSON.parse((await ctr(['content', 'get', m.digest])).stdout);
  }
  const config = JSON.parse((await ctr(['content', 'get', doc.config!.digest])).stdout) as { rootfs: { diff_ids: string[] } };
  return config.rootfs.diff_ids.reduce((chain, diffId) => (chain === '' ? diffId : `sha256:${createHash('sha256').update(`${chain} ${diffId}`).digest('hex')}`), '');
}

/**
 * A view of the top chainID, protected from containerd's GC (an unreferenced view is garbage: a GC
 * triggered by an earlier removal can collect it between two ctr calls, so label it a GC root and
 * start over if it vanished first). Returns the mount commands ctr prints.
 */
async function viewMounts(c: Containerd, sn: string[], ref: string, target: string, namespace?: string): Promise<{ key: string; lines: string[] }> {
  const ctr = ctrOf(c, namespace);
  const chain = await topChainId(c, ref, namespace);
  for (let attempt = 1; ; attempt++) {
    const key = `rootfs-view-${process.pid}-${++viewSeq}`;
    await ctr([...sn, 'view', key, chain]);
    const labelled = await ctr([...sn, 'label', key, 'containerd.io/gc.root=rootfs-view'], { allowFailure: true });
    const mounts = labelled.code === 0 ? await ctr([...sn, 'mounts', target, key], { allowFailure: true }) : labelled;
    if (mounts.code === 0) return { key, lines: mounts.stdout.split('\n').filter(Boolean) };
    if (attempt >= 3) throw new Error(`view of ${ref} kept disappearing: ${mounts.stderr}`);
  }
}

/** Mount `ref`'s rootfs read-only at `target` through `snapshotter` (in `namespace`, default the test's). */
export async function mountImage(c: Containerd, ref: string, snapshotter: string, target: string, namespace?: string): Promise<MountedImage> {
  mkdirSync(target, { recursive: true });
  const sn = ['snapshots', '--snapshotter', snapshotter];
  const { key, lines } = await viewMounts(c, sn, ref, target, namespace);
  const stdout = lines.join('\n');
  for (const line of stdout.split('\n').filter(Boolean)) {
    const [cmd, dashT, type, source, tgt, dashO, options] = line.split(' ');
    if (cmd !== 'mount' || dashT !== '-t' || dashO !== '-o' || !type || !source || !tgt || !options) throw new Error(`unexpected mount line: ${line}`);
    // A bind "type" is an option to mount(8), not a file system.
    const args = type === 'bind' ? ['--bind', '-o', options, source, tgt] : ['-t', type, '-o', options, source, tgt];
    await runCommand('mount', args);
  }
  return {
    target,
    unmount: async () => {
      await runCommand('umount', [target]);
      await ctrOf(c, namespace)([...sn, 'rm', key]);
    },
  };
}

/** Mount, describe and unmount `ref`'s rootfs as `snapshotter` serves it. */
export async function imageManifest(c: Containerd, ref: string, snapshotter: string, target: string, namespace?: string): Promise<Manifest> {
  const m = await mountImage(c, ref, snapshotter, target, namespace);
  try {
    return await snapshotRootfs(m.target);
  } finally {
    await m.unmount();
  }
}
