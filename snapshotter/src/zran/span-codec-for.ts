/** Picks the span codec for a layer from the tables its index carries. */
import { ClipError, dataCorrupt } from '../errors/index.js';
import { decodeCheckpointTable } from './checkpoint-table.js';
import { loadZran } from './native.js';
import { gzipSpanCodec, type SpanCodec } from './span-codec.js';
import { DEFAULT_SPAN_BOUNDS, checkSpanBounds, type SpanBounds } from './span-bounds.js';
import { decodeZstdFrameTable } from './zstd-frame-table.js';
import { zstdSpanCodec } from './zstd-span-codec.js';

/** The parts of a `LayerRef` that carry a random-access table (encoded index sections). */
export interface SpanTableRef {
  readonly uncompressedSize: number;
  readonly gzipCheckpoints?: Buffer | undefined;
  readonly zstdFrames?: Buffer | undefined;
}

/** Whether the layer has a table this process can use (gzip tables need the clip_zran addon). */
export function hasSpanTable(ref: SpanTableRef): boolean {
  return ref.zstdFrames !== undefined || (ref.gzipCheckpoints !== undefined && loadZran() !== undefined);
}

/** Range-reads blob `digest` of the layer's repository (a gzip window pack). */
export type BlobRangeFetcher = (digest: string, start: number, end: number, signal: AbortSignal) => Promise<Buffer>;

/**
 * The layer's codec; throws data_corrupt when its table is malformed or describes another size,
 * `CLIP_ZRAN_SPAN_TOO_LARGE` when a span is over `bounds`. `fetchBlobRange` serves windows of tables
 * that keep them in a pack.
 */
export function spanCodecFor(ref: SpanTableRef, fetchBlobRange?: BlobRangeFetcher, bounds: SpanBounds = DEFAULT_SPAN_BOUNDS): SpanCodec {
  let codec: SpanCodec;
  if (ref.zstdFrames !== undefined) {
    codec = zstdSpanCodec(decodeZstdFrameTable(ref.zstdFrames));
  } else if (ref.gzipCheckpoints !== undefined) {
    const z = loadZran();
    if (!z) throw new ClipError('unimplemented', 'CLIP_ZRAN_UNAVAILABLE', 'the clip_zran addon is not built (make zran)');
    const table = decodeCheckpointTable(ref.gzipCheckpoints);
    const pack = table.pack;
    codec = gzipSpanCodec(table, z, pack && fetchBlobRange ? (start, end, signal) => fetchBlobRange(pack.digest, start, end, signal) : undefined);
  } else {
    throw new ClipError('failed_precondition', 'CLIP_ZRAN_NO_TABLE', 'the layer has no random-access table');
  }
  if (codec.table.uncompressedSize !== ref.uncompressedSize) {
    throw dataCorrupt('CLIP_ZRAN_TABLE_CORRUPT', `${codec.name} table is for ${codec.table.uncompressedSize} bytes, the layer has ${ref.uncompressedSize}`);
  }
  checkSpanBounds(codec, bounds);
  return codec;
}
