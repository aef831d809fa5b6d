export { CheckpointBuilder, DEFAULT_MIN_LAYER_BYTES, DEFAULT_SPAN_BYTES } from './checkpoint-builder.js';
export type { CheckpointBuilderOptions } from './checkpoint-builder.js';
export {
  CHECKPOINT_TABLE_VERSION, decodeCheckpointTable, encodeCheckpointTable, spanAt, spanCompressedRange, spanEnd,
} from './checkpoint-table.js';
export type { GzipCheckpoint, GzipCheckpointTable } from './checkpoint-table.js';
export { gzipCheckpointObserver } from './index-observer.js';
export { loadZran } from './native.js';
export type { NativePoint, ZranNative } from './native.js';
export { SparseGzipLayer } from './sparse-gzip-layer.js';
export type { RangeFetcher, SparseGzipLayerOptions } from './sparse-gzip-layer.js';
