import type { Logger } from '../log/index.js';
import type { IdMapping } from './id-mapping.js';

/** What a lazy mount knows about the request that caused it. */
export interface RemoteMountContext {
  /** The snapshot key; containerd puts its namespace first (`<ns>/<n>/…`). */
  key: string;
  log: Logger;
  /** True when re-mounting a committed snapshot at start-up: no network may be needed. */
  restore: boolean;
  /**
   * The Prepare's parent as containerd named it ('' for none): the layer may be committed under
   * its target chain ID only if its diffID chains from this parent to it. On restore, the name of
   * the committed parent, so the same check runs again.
   */
  parent?: string;
}

/**
 * The narrow seam between the snapshot state machine and everything lazy (FUSE, clip indexes,
 * registries): mount a layer at a path from its labels, check it, unmount it. Tests swap in fakes.
 */
export interface RemoteLayers {
  /**
   * Mount the layer the labels describe at `mountpoint`. Resolves to the labels to record on the
   * committed snapshot (what a restart needs to mount it again), or `undefined` when the labels do
   * not describe a layer this snapshotter can serve lazily; throws when it should but cannot (the
   * caller falls back to an ordinary snapshot and counts it).
   */
  mount(mountpoint: string, labels: Readonly<Record<string, string>>, ctx: RemoteMountContext): Promise<Record<string, string> | undefined>;
  /** Throws an `unavailable` ClipError when the layer mounted at `mountpoint` cannot serve reads. */
  check(mountpoint: string, labels: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Mount, at `target`, the layer mounted at `layerMountpoint` with its owners translated by `ids`
   * (a user-namespaced container's view, sharing the layer's reads and caches).
   */
  mountMapped(layerMountpoint: string, target: string, ids: IdMapping, log: Logger): Promise<void>;
  /** Unmount a layer or a mapped view; a no-op when nothing is mounted there. */
  unmount(mountpoint: string): Promise<void>;
  /**
   * The layer registered at `mountpoint` as an ordinary directory — complete, verified against its
   * diffID and extracted in overlayfs's lower-dir form — for new snapshots to use as a lower dir
   * instead of the FUSE mount; undefined while only FUSE can serve it. Optional: without it every
   * lazy layer stays on FUSE.
   */
  localDir?(mountpoint: string): Promise<string | undefined>;
  /**
   * Unmount the FUSE filesystem of a layer that has a `localDir`, keeping the layer registered (its
   * dir is kept, `check` answers from it, `unmount` forgets it). The caller guarantees nothing it
   * handed out still references the FUSE mount. Resolves to whether it was retired.
   */
  retire?(mountpoint: string): Promise<boolean>;
  /**
   * Mount points served now by a server that outlives this process (layers and mapped views). A
   * snapshotter opening its root keeps these mounts and re-mounts only the rest; absent = nothing
   * outlives the process, every lazy mount found at start is stale.
   */
  served?(): Promise<string[]>;
}
