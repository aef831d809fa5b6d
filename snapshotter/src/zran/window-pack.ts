/**
 * Window packs: checkpoint tables with their windows kept outside the index.
 *
 * A window is 32 KiB of output (≈ 16 KiB after LZ4) and a table has one per span, so inline
 * windows make the index the largest thing a cold node fetches: measured on the bench's python
 * image, 4.6 MB of windows at 1 MiB spans against the 9 MB of spans the container reads. A node
 * needs the windows of only the spans it reads — and not even those when the span before is on
 * disk (a window is the tail of the previous span's output). So the index published as an
 * artifact carries a version-2 table (offsets and hashes only; layout in `checkpoint-table.ts`)
 * and the windows go into one separate blob, the pack, fetched by Range when a span needs its
 * window:
 *
 *   pack = the lz4-napi blocks of every window, in point order
 */
import { createHash } from 'node:crypto';
import { compressSync, uncompressSync } from '../util/lz4.js';
import { dataCorrupt } from '../errors/index.js';
import { tableCorrupt } from './table-bytes.js';
import { decodeCheckpointTable, encodeCheckpointTable, isPackedTable, type GzipCheckpoint, type PackedWindow, type WindowPackRef } from './checkpoint-table.js';

/**
 * Move the windows of an encoded version-1 table into a pack; returns the version-2 table and the
 * pack. A version-2 table is refused (it has no windows to move).
 */
export function packWindows(encoded: Buffer): { table: Buffer; pack: Buffer; packRef: WindowPackRef } {
  if (isPackedTable(encoded)) throw tableCorrupt('gzip checkpoint table', 'windows are already packed');
  const t = decodeCheckpointTable(encoded);
  const blocks: Buffer[] = [];
  const points: GzipCheckpoint[] = [];
  let offset = 0;
  for (const p of t.points) {
    const window = p.window ?? Buffer.alloc(0);
    const lz = window.length > 0 ? compressSync(window) : Buffer.alloc(0);
    points.push({ in: p.in, out: p.out, bits: p.bits, sha256: p.sha256, packed: { offset, length: lz.length, windowLen: window.length } });
    blocks.push(lz);
    offset += lz.length;
  }
  const pack = Buffer.concat(blocks);
  const packRef: WindowPackRef = { digest: `sha256:${createHash('sha256').update(pack).digest('hex')}`, size: pack.length };
  return { table: encodeCheckpointTable({ ...t, points, pack: packRef }), pack, packRef };
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
