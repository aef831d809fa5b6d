/**
 * The gzip checkpoint table and its binary form, stored as the clip index's `gzipCheckpoints`
 * section; one codec for both versions. All integers little-endian:
 *
 *   v1 table = version u32 (1) ‖ count u32 ‖ spanBytes u32 ‖ reserved u32
 *              ‖ compressedSize u64 ‖ uncompressedSize u64 ‖ count × (row ‖ lz4 block)
 *   v2 table = version u32 (2) ‖ count u32 ‖ spanBytes u32 ‖ reserved u32
 *              ‖ compressedSize u64 ‖ uncompressedSize u64 ‖ packSize u64 ‖ sha256(pack) 32
 *              ‖ count × (row ‖ packOffset u64)
 *   row      = in u64 ‖ out u64 ‖ bits u8 ‖ pad u8×3 ‖ windowLen u32 ‖ lz4Len u32 ‖ sha256(span) 32
 *
 * Version 1 carries each window inline (an lz4-napi block of lz4Len bytes; 0 when windowLen is 0).
 * Version 2 keeps them in a separate blob, the window pack (`window-pack.ts` says why), and records
 * where each one sits in it. Span i is the uncompressed range [out_i, out_{i+1}) (the last ends at
 * uncompressedSize); its sha256 lets a range read verify every span it inflates, since the diffID
 * covers only the whole.
 */
import { compressSync, uncompressSync } from '../util/lz4.js';
import { dataCorrupt } from '../errors/index.js';
import { readU64 as readOffset, tableCorrupt, writeU64 } from './table-bytes.js';

/** Windows inline. */
export const CHECKPOINT_TABLE_VERSION = 1;
/** Windows in a pack. */
export const PACKED_TABLE_VERSION = 2;
const HEAD_BYTES = { [CHECKPOINT_TABLE_VERSION]: 32, [PACKED_TABLE_VERSION]: 72 } as const;
const ROW_BYTES = 60;
const PACKED_ROW_BYTES = ROW_BYTES + 8;
const WINDOW_MAX = 32 * 1024;

/** Where a point's window lives in the pack. */
export interface PackedWindow {
  readonly offset: number;
  readonly length: number;
  /** Uncompressed window length. */
  readonly windowLen: number;
}

/** The pack a version-2 table refers to. */
export interface WindowPackRef {
  readonly digest: string;
  readonly size: number;
}

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

/** Whether an encoded table keeps its windows in a pack. */
export function isPackedTable(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32LE(0) === PACKED_TABLE_VERSION;
}

/** Encode a table: version 2 when it names a pack (every point then says where its window is), else version 1 (windows LZ4-compressed inline). */
export function encodeCheckpointTable(t: GzipCheckpointTable): Buffer {
  const version = t.pack ? PACKED_TABLE_VERSION : CHECKPOINT_TABLE_VERSION;
  const head = Buffer.alloc(HEAD_BYTES[version]);
  head.writeUInt32LE(version, 0);
  head.writeUInt32LE(t.points.length, 4);
  head.writeUInt32LE(t.spanBytes, 8);
  writeU64(head, 16, t.compressedSize);
  writeU64(head, 24, t.uncompressedSize);
  if (t.pack) {
    writeU64(head, 32, t.pack.size);
    Buffer.from(t.pack.digest.replace(/^sha256:/, ''), 'hex').copy(head, 40);
  }
  const parts: Buffer[] = [head];
  for (const p of t.points) {
    if (t.pack) {
      if (!p.packed) throw corrupt('a point without its pack location cannot be encoded packed');
      const row = Buffer.alloc(PACKED_ROW_BYTES);
      writeRow(row, p, p.packed.windowLen, p.packed.length);
      writeU64(row, ROW_BYTES, p.packed.offset);
      parts.push(row);
    } else {
      if (!p.window) throw corrupt('a point without its window cannot be encoded inline');
      const lz = p.window.length > 0 ? compressSync(p.window) : Buffer.alloc(0);
      const row = Buffer.alloc(ROW_BYTES);
      writeRow(row, p, p.window.length, lz.length);
      parts.push(row, lz);
    }
  }
  return Buffer.concat(parts);
}

/** Decode and validate a table of either version; throws data_corrupt (`CLIP_ZRAN_TABLE_CORRUPT`) when malformed. */
export function decodeCheckpointTable(buf: Buffer): GzipCheckpointTable {
  if (buf.length < HEAD_BYTES[CHECKPOINT_TABLE_VERSION]) throw corrupt('shorter than its header');
  if (isPackedTable(buf)) return decodePacked(buf);
  if (buf.readUInt32LE(0) !== CHECKPOINT_TABLE_VERSION) throw corrupt(`version ${buf.readUInt32LE(0)} is not supported`);
  const count = buf.readUInt32LE(4);
  const spanBytes = buf.readUInt32LE(8);
  const compressedSize = readU64(buf, 16);
  const uncompressedSize = readU64(buf, 24);
  const points: GzipCheckpoint[] = [];
  let at: number = HEAD_BYTES[CHECKPOINT_TABLE_VERSION];
  for (let i = 0; i < count; i++) {
    if (at + ROW_BYTES > buf.length) throw corrupt('truncated point');
    const p = readInlinePoint(buf, at);
    at = p.next;
    checkPoint(points, p.point, i, compressedSize, uncompressedSize);
    points.push(p.point);
  }
  if (at !== buf.length) throw corrupt('trailing bytes');
  return { spanBytes, compressedSize, uncompressedSize, points };
}

/** Version 2: points without windows, each with where its window is in the pack. */
function decodePacked(buf: Buffer): GzipCheckpointTable {
  const headBytes = HEAD_BYTES[PACKED_TABLE_VERSION];
  if (buf.length < headBytes) throw corrupt('shorter than its header');
  const count = buf.readUInt32LE(4);
  if (buf.length !== headBytes + count * PACKED_ROW_BYTES) throw corrupt(`${count} points in ${buf.length} bytes`);
  const compressedSize = readU64(buf, 16);
  const uncompressedSize = readU64(buf, 24);
  const packSize = readU64(buf, 32);
  const pack: WindowPackRef = { digest: `sha256:${buf.subarray(40, 72).toString('hex')}`, size: packSize };
  const points: GzipCheckpoint[] = [];
  for (let i = 0; i < count; i++) {
    const at = headBytes + i * PACKED_ROW_BYTES;
    const row = readRow(buf, at);
    const offset = readU64(buf, at + ROW_BYTES);
    if (row.bits > 7 || row.windowLen > WINDOW_MAX || (row.windowLen === 0) !== (row.lzLen === 0)) throw corrupt(`point ${i}: bad bit offset or window length`);
    if (offset + row.lzLen > packSize) throw corrupt(`point ${i}: window outside the pack`);
    const point: GzipCheckpoint = {
      in: row.in, out: row.out, bits: row.bits, sha256: row.sha256,
      packed: { offset, length: row.lzLen, windowLen: row.windowLen },
    };
    checkPoint(points, point, i, compressedSize, uncompressedSize);
    points.push(point);
  }
  return { spanBytes: buf.readUInt32LE(8), compressedSize, uncompressedSize, points, pack };
}

/** The row both versions share. */
function writeRow(row: Buffer, p: GzipCheckpoint, windowLen: number, lzLen: number): void {
  writeU64(row, 0, p.in);
  writeU64(row, 8, p.out);
  row.writeUInt8(p.bits, 16);
  row.writeUInt32LE(windowLen, 20);
  row.writeUInt32LE(lzLen, 24);
  p.sha256.copy(row, 28);
}

function readRow(buf: Buffer, at: number): { in: number; out: number; bits: number; windowLen: number; lzLen: number; sha256: Buffer } {
  return {
    in: readU64(buf, at), out: readU64(buf, at + 8), bits: buf.readUInt8(at + 16),
    windowLen: buf.readUInt32LE(at + 20), lzLen: buf.readUInt32LE(at + 24), sha256: Buffer.from(buf.subarray(at + 28, at + 60)),
  };
}

/** Points start at output 0, grow strictly on both sides and stay inside the layer. */
function checkPoint(points: readonly GzipCheckpoint[], point: GzipCheckpoint, i: number, compressedSize: number, uncompressedSize: number): void {
  const prev = points[i - 1];
  if (prev ? point.out <= prev.out || point.in <= prev.in : point.out !== 0) throw corrupt(`point ${i} out of order`);
  if (point.in > compressedSize || point.out >= Math.max(uncompressedSize, 1)) throw corrupt(`point ${i} beyond the layer`);
}

function readInlinePoint(buf: Buffer, at: number): { point: GzipCheckpoint; next: number } {
  const bits = buf.readUInt8(at + 16);
  const windowLen = buf.readUInt32LE(at + 20);
  const lzLen = buf.readUInt32LE(at + 24);
  if (bits > 7 || windowLen > WINDOW_MAX) throw corrupt('bad bit offset or window length');
  const lzStart = at + ROW_BYTES;
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
  const row = readRow(buf, at);
  return { point: { in: row.in, out: row.out, bits, window, sha256: row.sha256 }, next: lzStart + lzLen };
}

/** Compressed bytes needed to inflate span `i` (its partial first byte included). */
export function spanCompressedRange(t: GzipCheckpointTable, i: number): { start: number; end: number } {
  const p = t.points[i];
  if (!p) throw new RangeError(`no span ${i}`);
  const next = t.points[i + 1];
  return { start: p.in - (p.bits > 0 ? 1 : 0), end: next ? next.in : t.compressedSize };
}
