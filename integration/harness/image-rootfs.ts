/**
 * The root filesystem an image gives a container, as seen through a given snapshotter.
 *
 * `ctr images mount` (present in 1.6.20) unpacks if needed, asks the snapshotter for a read-only View
 * of the image's top chainID and mounts it with containerd's own mount code — the same lower
 * layers `ctr run` stacks its writable upper on. That avoids needing a walker binary inside the image.
 */
import { mkdirSync } from 'node:fs';
import type { Containerd } from './containerd.js';
import { snapshotRootfs, type Manifest } from './rootfs-manifest.js';

export interface MountedImage {
  target: string;
  /** `ctr images unmount --rm`: unmount, then remove the view snapshot and its lease. */
  unmount(): Promise<void>;
}

/** Mount `ref`'s rootfs read-only at `target` through `snapshotter`. */
export async function mountImage(c: Containerd, ref: string, snapshotter: string, target: string): Promise<MountedImage> {
  mkdirSync(target, { recursive: true });
  await c.ctr(['images', 'mount', '--snapshotter', snapshotter, ref, target]);
  return {
    target,
    unmount: async () => {
      await c.ctr(['images', 'unmount', '--rm', target]);
    },
  };
}

/** Mount, describe and unmount `ref`'s rootfs as `snapshotter` serves it. */
export async function imageManifest(c: Containerd, ref: string, snapshotter: string, target: string): Promise<Manifest> {
  const m = await mountImage(c, ref, snapshotter, target);
  try {
    return await snapshotRootfs(m.target);
  } finally {
    await m.unmount();
  }
}
