/**
 * Checkpoint tables with their windows kept outside the index ("window packs").
 *
 * A window is 32 KiB of output (≈ 16 KiB after LZ4) and a table has one per span, so inline
 * windows make the index the largest thing a cold node fetches: measured on the bench's python
 * image, 4.6 MB of windows at 1 MiB spans against the 9 MB of spans the container reads. A node
 * needs the windows of only the spans it reads — and not even those when the span before is on
 * disk (a window is the tail of the previous span's output). So the index published as an
 * artifact carries a version-2 table (offsets and hashes only) and the windows go into one
 * separate blob, the pack, fetched by Range when a span needs its window.
 *
 *   table v2 = version u32 (2) ‖ count u32 ‖ spanBytes u32 ‖ reserved u32
 *              ‖ compressedSize u64 ‖ uncompressedSize u64 ‖ packSize u64 ‖ sha256(pack) 32
 *              ‖ count × (in u64 ‖ out u64 ‖ bits u8 ‖ pad u8×3 ‖ windowLen u32 ‖ lz4Len u32
 *                         ‖ sha256(span) 32 ‖ packOffset u64)
 *   pack     = the lz4-napi blocks of every window, in point order
 */
import { createHash } from 'node:crypto';
import { compressSync, uncompressSync } from 'lz4-napi';
import { dataCorrupt } from '../errors/index.js';
import { readU64 as readOffset, tableCorrupt, writeU64 } from './table-bytes.js';
import { decodeCheckpointTable, type GzipCheckpoint, type GzipCheckpointTable } from './checkpoint-table.js';

export const PACKED_TABLE_VERSION = 2;
const HEAD_BYTES = 72;
const POINT_BYTES = 68;
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

const WHAT = 'gzip checkpoint table';
const corrupt = (detail: string) => tableCorrupt(WHAT, detail);
const readU64 = (buf: Buffer, at: number): number => readOffset(buf, at, WHAT);


/** Whether an encoded table keeps its windows in a pack. */
export function isPackedTable(buf: Buffer): boolean {
  return buf.length >= 4 && buf.readUInt32LE(0) === PACKED_TABLE_VERSION;
}

/**
 * Move the windows of an encoded table (either version) into a pack; returns the version-2 table
 * and the pack. Idempotent on a version-2 table only in the sense that it refuses it (no windows).
 */
export function packWindows(encoded: Buffer): { table: Buffer; pack: Buffer; packRef: WindowPackRef } {
  if (isPackedTable(encoded)) throw corrupt('windows are already packed');
  const t = decodeCheckpointTable(encoded);
  const blocks: Buffer[] = [];
  const rows: Buffer[] = [];
  let offset = 0;
  for (const p of t.points) {
    const window = p.window ?? Buffer.alloc(0);
    const lz = window.length > 0 ? compressSync(window) : Buffer.alloc(0);
    const row = Buffer.alloc(POINT_BYTES);
    writeU64(row, 0, p.in);
    writeU64(row, 8, p.out);
    row.writeUInt8(p.bits, 16);
    row.writeUInt32LE(window.length, 20);
    row.writeUInt32LE(lz.length, 24);
    p.sha256.copy(row, 28);
    writeU64(row, 60, offset);
    rows.push(row);
    blocks.push(lz);
    offset += lz.length;
  }
  const pack = Buffer.concat(blocks);
  const digest = createHash('sha256').update(pack).digest();
  const head = Buffer.alloc(HEAD_BYTES);
  head.writeUInt32LE(PACKED_TABLE_VERSION, 0);
  head.writeUInt32LE(t.points.length, 4);
  head.writeUInt32LE(t.spanBytes, 8);
  writeU64(head, 16, t.compressedSize);
  writeU64(head, 24, t.uncompressedSize);
  writeU64(head, 32, pack.length);
  digest.copy(head, 40);
  return { table: Buffer.concat([head, ...rows]), pack, packRef: { digest: `sha256:${digest.toString('hex')}`, size: pack.length } };
}

/** Decode a version-2 table: points without windows, each with where its window is in the pack. */
export function decodePackedTable(buf: Buffer): GzipCheckpointTable {
  if (buf.length < HEAD_BYTES) throw corrupt('shorter than its header');
  if (!isPackedTable(buf)) throw corrupt(`version ${buf.readUInt32LE(0)} is not a packed table`);
  const count = buf.readUInt32LE(4);
  if (buf.length !== HEAD_BYTES + count * POINT_BYTES) throw corrupt(`${count} points in ${buf.length} bytes`);
  const compressedSize = readU64(buf, 16);
  const uncompressedSize = readU64(buf, 24);
  const packSize = readU64(buf, 32);
  const pack: WindowPackRef = { digest: `sha256:${buf.subarray(40, 72).toString('hex')}`, size: packSize };
  const points: GzipCheckpoint[] = [];
  for (let i = 0; i < count; i++) {
    const at = HEAD_BYTES + i * POINT_BYTES;
    const bits = buf.readUInt8(at + 16);
    const windowLen = buf.readUInt32LE(at + 20);
    const length = buf.readUInt32LE(at + 24);
    const offset = readU64(buf, at + 60);
    if (bits > 7 || windowLen > WINDOW_MAX || (windowLen === 0) !== (length === 0)) throw corrupt(`point ${i}: bad bit offset or window length`);
    if (offset + length > packSize) throw corrupt(`point ${i}: window outside the pack`);
    const point: GzipCheckpoint = {
      in: readU64(buf, at), out: readU64(buf, at + 8), bits, sha256: Buffer.from(buf.subarray(at + 28, at + 60)),
      packed: { offset, length, windowLen },
    };
    const prev = points[i - 1];
    if (prev ? point.out <= prev.out || point.in <= prev.in : point.out !== 0) throw corrupt(`point ${i} out of order`);
    if (point.in > compressedSize || point.out >= Math.max(uncompressedSize, 1)) throw corrupt(`point ${i} beyond the layer`);
    points.push(point);
  }
  return { spanBytes: buf.readUInt32LE(8), compressedSize, uncompressedSize, points, pack };
}

/** Decompress one window fetched from the pack; throws `CLIP_ZRAN_WINDOW_CORRUPT`. */
export function unpackWindow(lz: Buffer, w: PackedWindow): Buffer {
  let window: Buffer;
  try {
    if (lz.length !== w.length || lz.readUInt32LE(0) !== w.windowLen) throw new Error('size prefix does not match');
    window = uncompressSync(lz);
  } catch (err) {
    throw dataCorrupt('CLIP_ZRAN_WINDOW_CORRUPT', `gzip window (${w.length} bytes at pack offset ${w.offset}) does not decompress`, err);
  }
  if (window.length !== w.windowLen) throw dataCorrupt('CLIP_ZRAN_WINDOW_CORRUPT', `gzip window at pack offset ${w.offset}: ${window.length} bytes, expected ${w.windowLen}`);
  return window;
}
