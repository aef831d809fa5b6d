/**
 * zstd spans for a sparse layer: a span's compressed range is whole frames, so it decodes with
 * plain fzstd (on a worker thread, `zstd-decode-pool.ts`). The fetched bytes are scanned first — exactly the span's frame count, no frame
 * claiming more output or window than the span can have — so a lying registry cannot make the
 * decoder allocate what the table never promised; the sha256 check after decoding is what
 * guarantees the bytes.
 */
import { dataCorrupt, findClipError, messageOf } from '../errors/index.js';
import type { SpanCodec } from './span-codec.js';
import { MAX_ZSTD_WINDOW_BYTES } from './zstd-frame-builder.js';
import { scanZstdFrames } from './zstd-frame-scanner.js';
import { zstdSpanEnd, type ZstdFrameTable } from './zstd-frame-table.js';
import { decodeZstdOffThread } from './zstd-decode-pool.js';

const decodeError = (i: number, detail: string, cause?: unknown) => dataCorrupt('CLIP_ZRAN_ZSTD_DECODE', `zstd span ${i}: ${detail}`, cause);

/** The codec over a decoded zstd frame table. */
export function zstdSpanCodec(table: ZstdFrameTable): SpanCodec {
  const compressedRange = (i: number): { start: number; end: number } => {
    const s = table.spans[i];
    if (!s) throw new RangeError(`no span ${i}`);
    return { start: s.in, end: s.inEnd };
  };
  return {
    name: 'zstd',
    table: { uncompressedSize: table.uncompressedSize, points: table.spans },
    compressedRange,
    async decode(i, compressed) {
      const s = table.spans[i];
      if (!s) throw new RangeError(`no span ${i}`);
      const want = zstdSpanEnd(table, i) - s.out;
      checkFrames(i, compressed, s.frames, want);
      let out: Uint8Array;
      try {
        // On a worker thread: fzstd is synchronous, ~6–12 ms per MiB of output (README).
        out = await decodeZstdOffThread(compressed);
      } catch (err) {
        throw decodeError(i, `does not decode: ${messageOf(err)}`, err);
      }
      if (out.length !== want) throw decodeError(i, `decoded to ${out.length} bytes, expected ${want}`);
      return Buffer.from(out.buffer, out.byteOffset, out.length);
    },
  };
}

function checkFrames(i: number, compressed: Buffer, frames: number, want: number): void {
  let scanned;
  try {
    scanned = scanZstdFrames(compressed).filter((f) => !f.skippable);
  } catch (err) {
    throw findClipError(err) ?? decodeError(i, messageOf(err), err);
  }
  if (scanned.length !== frames) throw decodeError(i, `${scanned.length} frames where the table has ${frames}`);
  for (const f of scanned) {
    if ((f.contentSize ?? 0) > want || f.windowSize > MAX_ZSTD_WINDOW_BYTES) {
      throw decodeError(i, `a frame claims ${f.contentSize ?? f.windowSize} bytes in a ${want}-byte span`);
    }
  }
}
