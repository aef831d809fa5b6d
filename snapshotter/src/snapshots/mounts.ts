import { join } from 'node:path';
import { Kind, type Mount } from './types.js';

/** The shape of a snapshot that mount building needs. */
export interface MountSubject {
  id: number;
  kind: Kind;
  /** Ancestor ids, nearest parent first. */
  parentIds: readonly number[];
  /**
   * An active snapshot prepared for a layer unpack (`containerd.io/snapshot.ref`) without a parent:
   * under containerd's parallel unpack its parent arrives only at Commit, so it must be mounted as
   * an overlay upper dir, where containerd's applier keeps whiteouts as overlay whiteouts instead
   * of dropping them (as it does on a bind mount).
   */
  unpackWithoutParent?: boolean;
}

/** Options that depend on the host, decided once at start-up. */
export interface MountOptions {
  snapshotsDir: string;
  indexOff: boolean;
  /** An empty directory, the lower dir of `unpackWithoutParent` mounts. */
  emptyDir?: string;
  /** Where a parent's contents are seen (default its `fs`; a uid/gid-translated view for userns). */
  lowerPath?: (id: number) => string;
}

/** The directory holding a snapshot's contents (its overlay upper dir, or a FUSE mount point). */
export const fsPath = (snapshotsDir: string, id: number): string => join(snapshotsDir, String(id), 'fs');
/** The overlay work dir of an active snapshot. */
export const workPath = (snapshotsDir: string, id: number): string => join(snapshotsDir, String(id), 'work');

/**
 * The mounts for a snapshot, shaped exactly like containerd's overlayfs snapshotter: a bind mount
 * without parents (or a view of one parent), otherwise one overlay mount.
 */
export function buildMounts(s: MountSubject, o: MountOptions): Mount[] {
  const lower = o.lowerPath ?? ((id: number) => fsPath(o.snapshotsDir, id));
  if (s.parentIds.length === 0 && s.kind === Kind.Active && s.unpackWithoutParent && o.emptyDir !== undefined) {
    const options = o.indexOff ? ['index=off'] : [];
    options.push(`workdir=${workPath(o.snapshotsDir, s.id)}`, `upperdir=${fsPath(o.snapshotsDir, s.id)}`, `lowerdir=${o.emptyDir}`);
    return [{ type: 'overlay', source: 'overlay', options }];
  }
  if (s.parentIds.length === 0) {
    const access = s.kind === Kind.View ? 'ro' : 'rw';
    return [{ type: 'bind', source: fsPath(o.snapshotsDir, s.id), options: [access, 'rbind'] }];
  }
  const options: string[] = o.indexOff ? ['index=off'] : [];
  if (s.kind === Kind.Active) {
    options.push(`workdir=${workPath(o.snapshotsDir, s.id)}`, `upperdir=${fsPath(o.snapshotsDir, s.id)}`);
  } else if (s.parentIds.length === 1) {
    return [{ type: 'bind', source: lower(s.parentIds[0]!), options: ['ro', 'rbind'] }];
  }
  options.push(`lowerdir=${s.parentIds.map(lower).join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}
