export type { BlobSource } from './blob-source.js';
export type { ContentCachePolicy } from './content-cache-tier.js';
export { STORAGE_ERROR_CODES } from './errors.js';
export type { LayerReader, LayerRef, ReadSource } from './layer-reader.js';
export { LayerStore } from './layer-store.js';
export type { LayerStoreOptions } from './layer-store.js';
export { RegistryBlobSource } from './registry-blob-source.js';
export type { BlobClient } from './registry-blob-source.js';
export type { ByteRange } from './range-tier.js';
