/**
 * Names of the clip index artifact: one OCI manifest per image manifest (its `subject`), with an
 * empty config and one layer per image layer holding that layer's encoded clip index.
 */
import { CLIP_INDEX_VERSION } from '../clip/index.js';

/** `artifactType` of the artifact manifest; what referrer lookups filter on. */
export const CLIP_INDEX_ARTIFACT_TYPE = 'application/vnd.clip.index.v1';

/** Media type of one encoded index blob (the clip binary format, LZ4 inside). */
export const CLIP_INDEX_MEDIA_TYPE = 'application/vnd.clip.index.v1+lz4';

/**
 * Media type of a gzip window pack: the zran windows of one layer's checkpoints, which the index's
 * version-2 checkpoint table points into and a cold node range-reads (zran/window-pack.ts).
 */
export const CLIP_WINDOW_PACK_MEDIA_TYPE = 'application/vnd.clip.zran.windows.v1+lz4';

/** On each index blob: the compressed digest of the image layer it indexes. */
export const ANNOTATION_LAYER_DIGEST = 'dev.clip.layer.digest';

/** On each index blob: the layer's diffID (sha256 of the uncompressed tar). */
export const ANNOTATION_LAYER_DIFF_ID = 'dev.clip.layer.diff_id';

/** On each index blob and on the manifest: the clip index format version inside the blob. */
export const ANNOTATION_INDEX_VERSION = 'dev.clip.index.version';

/** The format version this build writes and can read. */
export const INDEX_FORMAT_VERSION: number = CLIP_INDEX_VERSION;

/** Index blobs larger than this are refused when fetched (a 1M-entry layer needs far less). */
export const MAX_INDEX_BLOB_BYTES = 256 * 1024 * 1024;
