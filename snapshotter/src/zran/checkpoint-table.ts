/**
 * The gzip checkpoint table and its binary form, stored as the clip index's `gzipCheckpoints`
 * section. All integers little-endian:
 *
 *   table = version u32 (1) ‖ count u32 ‖ spanBytes u32 ‖ reserved u32
 *           ‖ compressedSize u64 ‖ uncompressedSize u64 ‖ count × point
 *   point = in u64 ‖ out u64 ‖ bits u8 ‖ pad u8×3 ‖ windowLen u32 ‖ lz4Len u32 ‖ sha256(span) 32
 *           ‖ lz4-napi block(window) (lz4Len bytes; 0 when windowLen is 0)
 *
 * Span i is the uncompressed range [out_i, out_{i+1}) (the last ends at uncompressedSize); its
 * sha256 lets a range read verify every span it inflates, since the diffID covers only the whole.
 */
import { compressSync, uncompressSync } from 'lz4-napi';
import { dataCorrupt } from '../errors/index.js';
import { readU64 as readOffset, tableCorrupt, writeU64 } from './table-bytes.js';
import { decodePackedTable, isPackedTable, type PackedWindow, type WindowPackRef } from './window-pack.js';

export const CHECKPOINT_TABLE_VERSION = 1;
const HEAD_BYTES = 32;
const POINT_BYTES = 60;
const WINDOW_MAX = 32 * 1024;

/** One resume point in a gzip stream. */
export interface GzipCheckpoint {
  /** Offset in the blob of the first whole byte after the deflate block boundary. */
  readonly in: number;
  /** Offset in the uncompressed layer. */
  readonly out: number;
  /** Bits of the byte at `in - 1` that belong to the block (0–7). */
  readonly bits: number;
  /**
   * The 32 KiB (or shorter, near the start) of output preceding `out`: inline (version-1 tables),
   * or where it is in the layer's window pack (version 2, `packed`).
   */
  readonly window?: Buffer | undefined;
  readonly packed?: PackedWindow | undefined;
  /** sha256 of the span starting here. */
  readonly sha256: Buffer;
}

/** Every checkpoint of one gzip layer. */
export interface GzipCheckpointTable {
  readonly spanBytes: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly points: readonly GzipCheckpoint[];
  /** Version-2 tables: the blob (same repository as the layer) holding the windows. */
  readonly pack?: WindowPackRef | undefined;
}

const WHAT = 'gzip checkpoint table';
const corrupt = (detail: string) => tableCorrupt(WHAT, detail);
const readU64 = (buf: Buffer, at: number): number => readOffset(buf, at, WHAT);


/** Encode a table (windows LZ4-compressed). */
export function encodeCheckpointTable(t: GzipCheckpointTable): Buffer {
  const head = Buffer.alloc(HEAD_BYTES);
  head.writeUInt32LE(CHECKPOINT_TABLE_VERSION, 0);
  head.writeUInt32LE(t.points.length, 4);
  head.writeUInt32LE(t.spanBytes, 8);
  writeU64(head, 16, t.compressedSize);
  writeU64(head, 24, t.uncompressedSize);
  const parts: Buffer[] = [head];
  for (const p of t.points) {
    const row = Buffer.alloc(POINT_BYTES);
    if (!p.window) throw corrupt('a point without its window cannot be encoded inline');
    const lz = p.window.length > 0 ? compressSync(p.window) : Buffer.alloc(0);
    writeU64(row, 0, p.in);
    writeU64(row, 8, p.out);
    row.writeUInt8(p.bits, 16);
    row.writeUInt32LE(p.window.length, 20);
    row.writeUInt32LE(lz.length, 24);
    p.sha256.copy(row, 28);
    parts.push(row, lz);
  }
  return Buffer.concat(parts);
}

/** Decode and validate a table; throws data_corrupt (`CLIP_ZRAN_TABLE_CORRUPT`) when malformed. */
export function decodeCheckpointTable(buf: Buffer): GzipCheckpointTable {
  if (buf.length < HEAD_BYTES) throw corrupt('shorter than its header');
  if (isPackedTable(buf)) return decodePackedTable(buf);
  if (buf.readUInt32LE(0) !== CHECKPOINT_TABLE_VERSION) throw corrupt(`version ${buf.readUInt32LE(0)} is not supported`);
  const count = buf.readUInt32LE(4);
  const spanBytes = buf.readUInt32LE(8);
  const compressedSize = readU64(buf, 16);
  const uncompressedSize = readU64(buf, 24);
  const points: GzipCheckpoint[] = [];
  let at = HEAD_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + POINT_BYTES > buf.length) throw corrupt('truncated point');
    const p = readPoint(buf, at);
    at = p.next;
    const prev = points[i - 1];
    if (prev ? p.point.out <= prev.out || p.point.in <= prev.in : p.point.out !== 0) throw corrupt(`point ${i} out of order`);
    if (p.point.in > compressedSize || p.point.out >= Math.max(uncompressedSize, 1)) throw corrupt(`point ${i} beyond the layer`);
    points.push(p.point);
  }
  if (at !== buf.length) throw corrupt('trailing bytes');
  return { spanBytes, compressedSize, uncompressedSize, points };
}

function readPoint(buf: Buffer, at: number): { point: GzipCheckpoint; next: number } {
  const bits = buf.readUInt8(at + 16);
  const windowLen = buf.readUInt32LE(at + 20);
  const lzLen = buf.readUInt32LE(at + 24);
  if (bits > 7 || windowLen > WINDOW_MAX) throw corrupt('bad bit offset or window length');
  const lzStart = at + POINT_BYTES;
  if (lzStart + lzLen > buf.length) throw corrupt('window out of range');
  let window: Buffer = Buffer.alloc(0);
  if (windowLen > 0) {
    const lz = buf.subarray(lzStart, lzStart + lzLen);
    if (lz.length < 4 || lz.readUInt32LE(0) !== windowLen) throw corrupt('window size prefix does not match');
    try {
      window = uncompressSync(lz);
    } catch (err) {
      throw dataCorrupt('CLIP_ZRAN_TABLE_CORRUPT', 'gzip checkpoint table: window does not decompress', err);
    }
    if (window.length !== windowLen) throw corrupt('window length mismatch');
  }
  const point = { in: readU64(buf, at), out: readU64(buf, at + 8), bits, window, sha256: Buffer.from(buf.subarray(at + 28, at + 60)) };
  return { point, next: lzStart + lzLen };
}

/** Compressed bytes needed to inflate span `i` (its partial first byte included). */
export function spanCompressedRange(t: GzipCheckpointTable, i: number): { start: number; end: number } {
  const p = t.points[i];
  if (!p) throw new RangeError(`no span ${i}`);
  const next = t.points[i + 1];
  return { start: p.in - (p.bits > 0 ? 1 : 0), end: next ? next.in : t.compressedSize };
}
