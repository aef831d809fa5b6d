/** Stable error codes raised by the storage layer (documented in the storage README section). */
export const STORAGE_ERROR_CODES = {
  /** No tier could serve a read within `readTimeoutMs`. */
  readTimeout: 'CLIP_LAYER_READ_TIMEOUT',
  /** The registry download failed after its bounded retries. */
  fetchFailed: 'CLIP_LAYER_FETCH_FAILED',
  /** The downloaded layer did not hash to its diffID. */
  digestMismatch: 'CLIP_LAYER_DIGEST_MISMATCH',
  /** The downloaded layer's uncompressed size differs from the descriptor's. */
  sizeMismatch: 'CLIP_LAYER_SIZE_MISMATCH',
  /** The layer is not on disk, not in the ContentCache and not in the registry. */
  layerUnavailable: 'CLIP_LAYER_UNAVAILABLE',
  /** The ContentCache failed and `onContentCacheUnavailable` is `error`. */
  contentCacheUnavailable: 'CLIP_CONTENT_CACHE_UNAVAILABLE',
  /** A LayerStore was built without a ContentCache, or with a bad option. */
  badOptions: 'CLIP_STORAGE_BAD_OPTIONS',
  /** The store was used before `start()` or after `close()`. */
  notStarted: 'CLIP_STORAGE_NOT_STARTED',
  /** A read with a negative offset or length, or outside the caller's buffer. */
  badRange: 'CLIP_LAYER_BAD_RANGE',
} as const;
