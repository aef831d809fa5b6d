/** Stable error codes raised by ContentCache backends (documented in the README's ContentCache section). */
export const CONTENT_CACHE_ERROR_CODES = {
  /** The backend cannot be reached, refused our credentials, or did not answer within `timeout_ms`. */
  unavailable: 'CLIP_CONTENT_CACHE_UNAVAILABLE',
  /** Bad configuration or arguments (addresses, chunk size, ranges). */
  badOptions: 'CLIP_CONTENT_CACHE_BAD_OPTIONS',
  /** A publish was aborted, lost its lock, or the file changed under it. */
  publishAborted: 'CLIP_CONTENT_CACHE_PUBLISH_ABORTED',
} as const;
