/**
 * The zstd frame table and its binary form, stored as the clip index's `zstdFrames` section. A
 * span is a run of whole zstd frames (a span starts at a frame boundary), so it decodes on its
 * own. All integers little-endian:
 *
 *   table = version u32 (1) ‖ count u32 ‖ spanBytes u32 ‖ frameCount u32
 *           ‖ compressedSize u64 ‖ uncompressedSize u64 ‖ count × span
 *   span  = in u64 ‖ inEnd u64 ‖ out u64 ‖ frames u32 ‖ reserved u32 (0) ‖ sha256(span) 32
 *
 * Span i is the compressed range [in, inEnd) (its frames plus any skippable frames between them)
 * and the uncompressed range [out_i, out_{i+1}) (the last ends at uncompressedSize).
 */
import { readU64 as readOffset, tableCorrupt, writeU64 } from './table-bytes.js';

export const ZSTD_FRAME_TABLE_VERSION = 1;
const HEAD_BYTES = 32;
const SPAN_BYTES = 64;
/** No span may claim more than this (a corrupt table must not make a read allocate gigabytes). */
export const MAX_ZSTD_SPAN_BYTES = 1024 * 1024 * 1024;

/** One independently decodable run of frames. */
export interface ZstdSpan {
  /** Offset in the blob of the span's first zstd frame. */
  readonly in: number;
  /** Offset just past its last zstd frame. */
  readonly inEnd: number;
  /** Offset in the uncompressed layer. */
  readonly out: number;
  /** zstd frames in the span (skippable frames not counted). */
  readonly frames: number;
  /** sha256 of the span's uncompressed bytes. */
  readonly sha256: Buffer;
}

/** Every span of one multi-frame zstd layer. */
export interface ZstdFrameTable {
  readonly spanBytes: number;
  /** zstd frames in the layer. */
  readonly frameCount: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly spans: readonly ZstdSpan[];
}

const WHAT = 'zstd frame table';
const corrupt = (detail: string) => tableCorrupt(WHAT, detail);
const readU64 = (buf: Buffer, at: number): number => readOffset(buf, at, WHAT);


/** Encode a table. */
export function encodeZstdFrameTable(t: ZstdFrameTable): Buffer {
  const out = Buffer.alloc(HEAD_BYTES + t.spans.length * SPAN_BYTES);
  out.writeUInt32LE(ZSTD_FRAME_TABLE_VERSION, 0);
  out.writeUInt32LE(t.spans.length, 4);
  out.writeUInt32LE(t.spanBytes, 8);
  out.writeUInt32LE(t.frameCount, 12);
  writeU64(out, 16, t.compressedSize);
  writeU64(out, 24, t.uncompressedSize);
  t.spans.forEach((s, i) => {
    const at = HEAD_BYTES + i * SPAN_BYTES;
    writeU64(out, at, s.in);
    writeU64(out, at + 8, s.inEnd);
    writeU64(out, at + 16, s.out);
    out.writeUInt32LE(s.frames, at + 24);
    s.sha256.copy(out, at + 32);
  });
  return out;
}

/** Decode and validate a table; throws data_corrupt (`CLIP_ZRAN_TABLE_CORRUPT`) when malformed. */
export function decodeZstdFrameTable(buf: Buffer): ZstdFrameTable {
  if (buf.length < HEAD_BYTES) throw corrupt('shorter than its header');
  if (buf.readUInt32LE(0) !== ZSTD_FRAME_TABLE_VERSION) throw corrupt(`version ${buf.readUInt32LE(0)} is not supported`);
  const count = buf.readUInt32LE(4);
  if (count === 0 || buf.length !== HEAD_BYTES + count * SPAN_BYTES) throw corrupt('length does not match the span count');
  const t = {
    spanBytes: buf.readUInt32LE(8),
    frameCount: buf.readUInt32LE(12),
    compressedSize: readU64(buf, 16),
    uncompressedSize: readU64(buf, 24),
  };
  const spans: ZstdSpan[] = [];
  let frames = 0;
  for (let i = 0; i < count; i++) {
    const at = HEAD_BYTES + i * SPAN_BYTES;
    const s = { in: readU64(buf, at), inEnd: readU64(buf, at + 8), out: readU64(buf, at + 16), frames: buf.readUInt32LE(at + 24), sha256: Buffer.from(buf.subarray(at + 32, at + 64)) };
    const prev = spans[i - 1];
    if (prev ? s.out <= prev.out || s.in < prev.inEnd : s.out !== 0) throw corrupt(`span ${i} out of order`);
    if (s.inEnd <= s.in || s.inEnd > t.compressedSize || s.out >= t.uncompressedSize || s.frames === 0) throw corrupt(`span ${i} beyond the layer`);
    if (prev && s.out - prev.out > MAX_ZSTD_SPAN_BYTES) throw corrupt(`span ${i - 1} too large`);
    frames += s.frames;
    spans.push(s);
  }
  const last = spans[count - 1] as ZstdSpan;
  if (t.uncompressedSize - last.out > MAX_ZSTD_SPAN_BYTES) throw corrupt(`span ${count - 1} too large`);
  if (frames !== t.frameCount) throw corrupt('span frame counts do not add up');
  return { ...t, spans };
}

/** Uncompressed end of span `i`. */
export function zstdSpanEnd(t: ZstdFrameTable, i: number): number {
  return t.spans[i + 1]?.out ?? t.uncompressedSize;
}
