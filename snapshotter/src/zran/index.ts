export { CheckpointBuilder, DEFAULT_MIN_LAYER_BYTES, DEFAULT_SPAN_BYTES } from './checkpoint-builder.js';
export type { CheckpointBuilderOptions } from './checkpoint-builder.js';
export {
  CHECKPOINT_TABLE_VERSION, PACKED_TABLE_VERSION, decodeCheckpointTable, encodeCheckpointTable, isPackedTable, spanCompressedRange,
} from './checkpoint-table.js';
export type { GzipCheckpoint, GzipCheckpointTable, PackedWindow, WindowPackRef } from './checkpoint-table.js';
export { gzipCheckpointObserver, randomAccessObserver, zstdFrameObserver } from './index-observer.js';
export type { RandomAccessObserverOptions } from './index-observer.js';
export { loadZran } from './native.js';
export type { NativePoint, ZranNative } from './native.js';
export { gzipSpanCodec, spanAt, spanEnd } from './span-codec.js';
export type { DecodeContext, PackFetcher, SpanCodec, SpanTable } from './span-codec.js';
export { hasSpanTable, spanCodecFor } from './span-codec-for.js';
export { DEFAULT_SPAN_BOUNDS, checkSpanBounds } from './span-bounds.js';
export type { SpanBounds } from './span-bounds.js';
export type { BlobRangeFetcher, SpanTableRef } from './span-codec-for.js';
export { MAX_ZSTD_FRAME_BYTES, MAX_ZSTD_WINDOW_BYTES, ZstdFrameBuilder } from './zstd-frame-builder.js';
export type { ZstdFrameBuilderOptions } from './zstd-frame-builder.js';
export { ZstdFrameScanner, scanZstdFrames } from './zstd-frame-scanner.js';
export type { FrameScanHandler, ScannedFrame } from './zstd-frame-scanner.js';
export { ZSTD_FRAME_TABLE_VERSION, decodeZstdFrameTable, encodeZstdFrameTable, zstdSpanEnd } from './zstd-frame-table.js';
export type { ZstdFrameTable, ZstdSpan } from './zstd-frame-table.js';
export { zstdSpanCodec } from './zstd-span-codec.js';
export { packWindows, unpackWindow } from './window-pack.js';
