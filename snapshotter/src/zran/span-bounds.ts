/**
 * Bounds on what one span of a random-access table (gzip checkpoints, zstd frame groups) may
 * cover. A table comes with an index, which is not trusted: a span as large as the layer would make
 * one range read fetch and inflate the whole layer into memory. A table with a span over a bound
 * is refused before any fetch (the layer is then read whole, as without a table).
 */
import { invalidArgument } from '../errors/index.js';
import { spanEnd, type SpanCodec } from './span-codec.js';

/** `[index] max_span_bytes` and `max_span_compressed_bytes`. */
export interface SpanBounds {
  /** Uncompressed bytes one span may decode to. */
  readonly maxSpanBytes: number;
  /** Compressed bytes one span may be fetched as. */
  readonly maxSpanCompressedBytes: number;
}

/** 64 MiB each: 256 times the default checkpoint span, far under the native addon's 1 GiB cap. */
export const DEFAULT_SPAN_BOUNDS: SpanBounds = { maxSpanBytes: 64 * 1024 * 1024, maxSpanCompressedBytes: 64 * 1024 * 1024 };

/** Throws `CLIP_ZRAN_SPAN_TOO_LARGE` (invalid_argument) naming the first span over a bound. */
export function checkSpanBounds(codec: SpanCodec, bounds: SpanBounds): void {
  const t = codec.table;
  for (let i = 0; i < t.points.length; i++) {
    const out = spanEnd(t, i) - (t.points[i]?.out ?? 0);
    if (out > bounds.maxSpanBytes) {
      throw invalidArgument('CLIP_ZRAN_SPAN_TOO_LARGE', `${codec.name} table: span ${i} decodes to ${out} bytes, over [index] max_span_bytes (${bounds.maxSpanBytes})`);
    }
    const { start, end } = codec.compressedRange(i);
    if (end - start > bounds.maxSpanCompressedBytes) {
      throw invalidArgument('CLIP_ZRAN_SPAN_TOO_LARGE', `${codec.name} table: span ${i} is ${end - start} compressed bytes, over [index] max_span_compressed_bytes (${bounds.maxSpanCompressedBytes})`);
    }
  }
}
