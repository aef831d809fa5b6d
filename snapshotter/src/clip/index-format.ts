/**
 * Layout of the clip index binary format (version 1). All integers little-endian.
 *
 *   file    = header(32) ‖ lz4-napi block(payload)
 *   header  = "CLIPIDX\0" ‖ version u16 ‖ flags u16 (0 in v1) ‖ payloadLen u32 ‖ compressedLen u32
 *             ‖ crc32(payload) u32 ‖ crc32(compressed) u32 ‖ reserved u32 (0)
 *   payload = sectionCount u32 ‖ sectionCount × (id u32, offset u32, length u32) ‖ section bodies
 *
 * Readers ignore sections they do not know, so later additions (gzip checkpoints, zstd frame
 * tables) need no format break; a change to an existing section's layout bumps the version.
 */
import { dataCorrupt } from '../errors/index.js';

export const MAGIC = Buffer.from('CLIPIDX\0', 'latin1');
export const VERSION = 1;
export const HEADER_BYTES = 32;
/** Refuse to inflate anything larger; a 100k-entry index is ~15 MB. */
export const MAX_PAYLOAD_BYTES = 1 << 30;

/** Section ids. */
export const SECTION = {
  meta: 1,
  strings: 2,
  entries: 3,
  xattrs: 4,
  /** Reserved for zran checkpoints (compressed offset, uncompressed offset, bit offset, 32 KiB window). */
  gzipCheckpoints: 5,
  /** zstd frame table: spans of whole frames (compressed range, uncompressed offset, sha256). */
  zstdFrames: 6,
} as const;
export const SECTION_ROW_BYTES = 12;

/** META section: compression u8 ×4, entryCount, uncompressedSize lo/hi, diffId ref, digest ref. */
export const META = { compression: 0, entryCount: 4, sizeLo: 8, sizeHi: 12, diffIdOff: 16, diffIdLen: 20, digestOff: 24, digestLen: 28, bytes: 32 } as const;

/** One fixed-width entry row. String refs point into the STRINGS section. */
export const ROW = {
  pathOff: 0, pathLen: 4, nameStart: 6, type: 8, flags: 9, linkedType: 10,
  mode: 12, uid: 16, gid: 20, unameOff: 24, unameLen: 28, gnameLen: 30, gnameOff: 32,
  linkOff: 36, linkLen: 40, mtimeSec: 44, mtimeNsec: 52, sizeLo: 56, sizeHi: 60,
  dataLo: 64, dataHi: 68, devMajor: 72, devMinor: 76, xattrStart: 80, xattrCount: 84,
  inode: 88, childStart: 92, childCount: 96, nlink: 100, bytes: 104,
} as const;

/** One xattr row: name ref (off u32, len u16, pad u16) and value ref (off u32, len u32). */
export const XATTR_ROW = { nameOff: 0, nameLen: 4, valueOff: 8, valueLen: 12, bytes: 16 } as const;

export const FLAG_OPAQUE = 1;

/** Entry type codes; 0 is never valid so a zeroed row is caught. */
export const TYPE_CODES = ['', 'file', 'dir', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'whiteout'] as const;
export const COMPRESSION_CODES = ['none', 'gzip', 'zstd'] as const;

/** Code of an entry type / compression in the tables above. */
export function codeOf<T extends string>(table: readonly T[], value: T): number {
  const i = table.indexOf(value);
  if (i < 0) throw new RangeError(`no code for ${value}`);
  return i;
}

/** Split a safe integer into 32-bit halves. */
export function writeU64(buf: Buffer, value: number, lo: number, hi: number): void {
  buf.writeUInt32LE(value % 0x1_0000_0000, lo);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), hi);
}

/** Join 32-bit halves; callers bound `hi` so the result stays a safe integer. */
export function readU64(buf: Buffer, lo: number, hi: number): number {
  return buf.readUInt32LE(hi) * 0x1_0000_0000 + buf.readUInt32LE(lo);
}

/** A data_corrupt error about the index itself. */
export function corrupt(detail: string): Error {
  return dataCorrupt('CLIP_INDEX_CORRUPT', `clip index: ${detail}`);
}

/**
 * Byte-wise order of a[a0..a1) and b[b0..b1): negative, zero or positive. A plain loop beats
 * Buffer#compare's native call for the short names the index compares.
 */
export function compareBytes(a: Uint8Array, a0: number, a1: number, b: Uint8Array, b0: number, b1: number): number {
  const n = Math.min(a1 - a0, b1 - b0);
  for (let k = 0; k < n; k++) {
    const d = (a[a0 + k] as number) - (b[b0 + k] as number);
    if (d !== 0) return d;
  }
  return (a1 - a0) - (b1 - b0);
}
