/** Snapshot kinds, numbered as on containerd's wire. */
export const Kind = { View: 1, Active: 2, Committed: 3 } as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** What containerd sees of a snapshot (`Info`). */
export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: Kind;
  /** Nanoseconds since the epoch. */
  createdNs: bigint;
  updatedNs: bigint;
  labels: Record<string, string>;
}

/** A mount as containerd's `containerd.types.Mount`. */
export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** Disk usage of a snapshot. */
export interface Usage {
  size: number;
  inodes: number;
}

/** Label keys the snapshotter reads or writes. */
export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const LABEL_REMOTE = 'containerd.io/snapshot/remote';
/** containerd 2.3+ on an unpack Prepare of a layer above the first: its parent's chain ID. */
export const LABEL_PARENT_CHAIN_ID = 'containerd.io/snapshot/parent-chain-id';
/** User-namespace mappings of a container's snapshot, "containerID:hostID:size[,…]" (remap-ids). */
export const LABEL_UID_MAPPING = 'containerd.io/snapshot/uidmapping';
export const LABEL_GID_MAPPING = 'containerd.io/snapshot/gidmapping';
/** containerd's limit on one label's key plus value. */
export const MAX_LABEL_BYTES = 4096;
