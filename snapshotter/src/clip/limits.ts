/**
 * Bounds on what a hostile layer or index may make the daemon parse or allocate. Tar streams and
 * index blobs come from registries, the ContentCache and image authors, so every size they
 * declare is checked against one of these before it is used. Defaults fit real images with a
 * wide margin; `[index]` config keys override them (config/schema.ts).
 */

/** Limits applied while parsing tar streams and decoding clip indexes. */
export interface ClipLimits {
  /** Tar members in one layer, and rows in one index. */
  maxEntries: number;
  /** Inflated size of one index payload (also bounds the LZ4 size it declares). */
  maxIndexBytes: number;
  /** Extended attributes (names + values) of one entry, inherited global PAX ones included. */
  maxXattrBytesPerEntry: number;
  /** Extended attributes of all entries of one layer together. */
  maxXattrBytesTotal: number;
}

/** A tar member larger than this is treated as corrupt (no real layer holds a 1 TiB file). */
export const MAX_TAR_ENTRY_BYTES = 2 ** 40;

/** The defaults (`plugin-config/config.toml` documents them). */
export const DEFAULT_CLIP_LIMITS: Readonly<ClipLimits> = Object.freeze({
  maxEntries: 2_000_000,
  maxIndexBytes: 512 * 1024 * 1024,
  maxXattrBytesPerEntry: 256 * 1024,
  maxXattrBytesTotal: 64 * 1024 * 1024,
});

/** The defaults with `overrides` applied. */
export function clipLimits(overrides: Partial<ClipLimits> = {}): ClipLimits {
  return { ...DEFAULT_CLIP_LIMITS, ...overrides };
}
