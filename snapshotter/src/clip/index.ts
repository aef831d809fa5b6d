export { buildIndex } from './build-index.js';
export type { BuildIndexOptions } from './build-index.js';
export { decodeIndex } from './decode-index.js';
export { decodeIndexOffThread } from './decode-index-off-thread.js';
export { encodeIndex } from './encode-index.js';
export { ClipIndexReader } from './index-reader.js';
export { SECTION, VERSION as CLIP_INDEX_VERSION } from './index-format.js';
export { normalizePath } from './paths.js';
export { DEFAULT_CLIP_LIMITS, MAX_TAR_ENTRY_BYTES, clipLimits } from './limits.js';
export type { ClipLimits } from './limits.js';
export { TarParser } from './tar-parser.js';
export type { TarEntry } from './tar-parser.js';
export type {
  BuiltEntry, ClipIndex, CompressedObserver, Compression, DeviceEntry, DirEntry, Entry, EntryType, FifoEntry, FileEntry, HardlinkEntry,
  LayerMeta, LinkedType, SymlinkEntry, WhiteoutEntry, Xattr,
} from './types.js';
