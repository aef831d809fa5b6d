export { detectCompression } from './compression.js';
export type { Compression } from './compression.js';
export { decompressFailed } from './decompress-error.js';
export { createDecompressor } from './decompressor.js';
export { sniff } from './sniff.js';
