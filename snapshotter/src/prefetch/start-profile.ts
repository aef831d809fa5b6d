/**
 * A start profile: the uncompressed byte ranges of one layer that containers read in their first
 * seconds. Stored per diffID (so every image sharing the layer shares it) in the ContentCache:
 *
 *   profile = "CLPF" ‖ version u32 (1) ‖ count u32 ‖ count × (start u64 ‖ end u64)
 *
 * all little-endian, ranges sorted and disjoint. Byte offsets, not spans: a profile stays valid
 * whatever span size the reading node's index was built with.
 */
import { dataCorrupt } from '../errors/index.js';
import type { ByteRange } from '../storage/index.js';

const MAGIC = Buffer.from('CLPF');
const VERSION = 1;
const HEAD_BYTES = 12;
const RANGE_BYTES = 16;
/** Profiles are small by construction: ranges closer than this are stored as one. */
export const PROFILE_GAP_BYTES = 64 * 1024;
/** More ranges than this are merged across ever larger gaps. */
export const MAX_PROFILE_RANGES = 4096;

/** ContentCache blob key of a layer's start profile. */
export const profileKey = (diffId: string): string => `profile:v${VERSION}:${diffId}`;

const corrupt = (what: string) => dataCorrupt('CLIP_PROFILE_CORRUPT', `start profile: ${what}`);

/** Sort, then merge ranges that overlap or lie within `gap` bytes of each other. */
export function mergeRanges(ranges: readonly ByteRange[], gap = PROFILE_GAP_BYTES): ByteRange[] {
  const sorted = ranges.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + gap) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** Merge until at most `max` ranges remain (doubling the gap each pass). */
export function boundRanges(ranges: readonly ByteRange[], max = MAX_PROFILE_RANGES): ByteRange[] {
  let gap = PROFILE_GAP_BYTES;
  let out = mergeRanges(ranges, gap);
  while (out.length > max) {
    gap *= 2;
    out = mergeRanges(out, gap);
  }
  return out;
}

/** Total bytes covered by disjoint ranges. */
export const coveredBytes = (ranges: readonly ByteRange[]): number => ranges.reduce((n, [s, e]) => n + (e - s), 0);

/** Encode sorted, disjoint ranges. */
export function encodeProfile(ranges: readonly ByteRange[]): Buffer {
  const buf = Buffer.alloc(HEAD_BYTES + ranges.length * RANGE_BYTES);
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(VERSION, 4);
  buf.writeUInt32LE(ranges.length, 8);
  ranges.forEach(([s, e], i) => {
    buf.writeBigUInt64LE(BigInt(s), HEAD_BYTES + i * RANGE_BYTES);
    buf.writeBigUInt64LE(BigInt(e), HEAD_BYTES + i * RANGE_BYTES + 8);
  });
  return buf;
}

/** Decode and validate a profile of a layer of `layerSize` bytes; throws `CLIP_PROFILE_CORRUPT`. */
export function decodeProfile(buf: Buffer, layerSize: number): ByteRange[] {
  if (buf.length < HEAD_BYTES || !buf.subarray(0, 4).equals(MAGIC)) throw corrupt('bad magic');
  if (buf.readUInt32LE(4) !== VERSION) throw corrupt(`unknown version ${buf.readUInt32LE(4)}`);
  const count = buf.readUInt32LE(8);
  if (count > MAX_PROFILE_RANGES || buf.length !== HEAD_BYTES + count * RANGE_BYTES) throw corrupt(`${count} ranges in ${buf.length} bytes`);
  const out: ByteRange[] = [];
  let prevEnd = -1;
  for (let i = 0; i < count; i++) {
    const s = Number(buf.readBigUInt64LE(HEAD_BYTES + i * RANGE_BYTES));
    const e = Number(buf.readBigUInt64LE(HEAD_BYTES + i * RANGE_BYTES + 8));
    if (!(s > prevEnd && e > s && e <= layerSize)) throw corrupt(`range ${i} [${s}, ${e}) is out of order or outside the ${layerSize}-byte layer`);
    out.push([s, e]);
    prevEnd = e;
  }
  return out;
}
