/**
 * User-namespace id mappings of a container's snapshot (containerd's `remap-ids` capability): the
 * labels `containerd.io/snapshot/uidmapping` and `…/gidmapping`, each "containerID:hostID:size"
 * entries joined by commas, as containerd's `userns.IDMap.Marshal` writes them. They come from the
 * containerd client (containerd drops them from image annotations), but are still checked here:
 * every number a uint32 below 2^32-1, no range running past it, at most 340 entries (the kernel's
 * limit for one uid_map), and container root mapped (containerd refuses a map without it).
 */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../errors/index.js';
import { LABEL_GID_MAPPING, LABEL_UID_MAPPING } from './types.js';

/** One mapping range. */
export interface IdRange {
  containerId: number;
  hostId: number;
  size: number;
}

const INVALID_ID = 0xffff_ffff;
const MAX_RANGES = 340;
/** What the kernel shows for an id with no mapping (overflowuid / overflowgid). */
export const OVERFLOW_ID = 65534;

/** A parsed uid and gid mapping: container ids → host ids. */
export class IdMapping {
  readonly uids: readonly IdRange[];
  readonly gids: readonly IdRange[];
  /** A short stable name of this mapping, for directory names. */
  readonly key: string;

  constructor(uids: readonly IdRange[], gids: readonly IdRange[]) {
    this.uids = uids;
    this.gids = gids;
    const canon = `${uids.map(show).join(',')};${gids.map(show).join(',')}`;
    this.key = createHash('sha256').update(canon).digest('hex').slice(0, 16);
  }

  /** The host uid of a container uid; an unmapped id becomes the host id of "nobody". */
  uid(containerUid: number): number {
    return toHost(containerUid, this.uids) ?? this.#nobody(this.uids);
  }

  /** The host gid of a container gid; an unmapped id becomes the host id of "nobody". */
  gid(containerGid: number): number {
    return toHost(containerGid, this.gids) ?? this.#nobody(this.gids);
  }

  /** Host uid and gid of container root. */
  root(): { uid: number; gid: number } {
    return { uid: this.uid(0), gid: this.gid(0) };
  }

  // Shown as overflowuid inside the container too, as an idmapped mount shows an unmapped owner.
  #nobody(ranges: readonly IdRange[]): number {
    return toHost(OVERFLOW_ID, ranges) ?? OVERFLOW_ID;
  }
}

function show(r: IdRange): string {
  return `${r.containerId}:${r.hostId}:${r.size}`;
}

/** The host id of a container id, or undefined when no range covers it. An empty map is identity. */
export function toHost(id: number, ranges: readonly IdRange[]): number | undefined {
  if (ranges.length === 0) return id;
  for (const r of ranges) {
    if (id >= r.containerId && id < r.containerId + r.size) return r.hostId + (id - r.containerId);
  }
  return undefined;
}

/** Parse one mapping label value; '' is no mapping (identity, as in containerd). */
export function parseIdRanges(value: string, label: string): IdRange[] {
  if (value === '') return [];
  const parts = value.split(',');
  if (parts.length > MAX_RANGES) {
    throw invalidArgument('CLIP_IDMAP_INVALID', `label ${label} has ${parts.length} ranges, more than ${MAX_RANGES}`);
  }
  return parts.map((part) => {
    const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(part);
    const bad = (why: string) =>
      invalidArgument('CLIP_IDMAP_INVALID', `label ${label}: mapping ${JSON.stringify(part.slice(0, 40))} ${why}`);
    if (!m) throw bad('is not containerID:hostID:size');
    const [containerId, hostId, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (containerId >= INVALID_ID || hostId >= INVALID_ID || size >= INVALID_ID) throw bad('has an id out of range');
    if (size === 0) throw bad('is empty');
    if (containerId + size > INVALID_ID || hostId + size > INVALID_ID) throw bad('runs past the largest id');
    return { containerId, hostId, size };
  });
}

/**
 * The mapping in a snapshot's labels, or undefined when it has none. Throws CLIP_IDMAP_INVALID
 * on a malformed value or when container root has no host id.
 */
export function idMappingFromLabels(labels: Readonly<Record<string, string>>): IdMapping | undefined {
  const u = labels[LABEL_UID_MAPPING];
  const g = labels[LABEL_GID_MAPPING];
  if (u === undefined && g === undefined) return undefined;
  const mapping = new IdMapping(parseIdRanges(u ?? '', LABEL_UID_MAPPING), parseIdRanges(g ?? '', LABEL_GID_MAPPING));
  if (toHost(0, mapping.uids) === undefined || toHost(0, mapping.gids) === undefined) {
    throw invalidArgument('CLIP_IDMAP_NO_ROOT', 'uid/gid mapping labels do not map container id 0');
  }
  if (mapping.uids.length === 0 && mapping.gids.length === 0) return undefined;
  return mapping;
}
