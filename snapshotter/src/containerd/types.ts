/** Plain shapes of the containerd API objects this module exchanges (wire names, camel-cased). */

/** An OCI descriptor as containerd stores it (`containerd.types.Descriptor`). */
export interface ContainerdDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/** A mount as returned by Prepare and taken by diff Apply. */
export interface ContainerdMount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

/** What containerd knows about one blob in its content store. */
export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

/** An image record: a name pointing at a manifest or index. */
export interface ImageRecord {
  name: string;
  target: ContainerdDescriptor;
  labels: Record<string, string>;
}

export type SnapshotKind = 'view' | 'active' | 'committed' | 'unknown';

/** A snapshot as containerd's snapshot service reports it. */
export interface SnapshotRecord {
  name: string;
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
}
