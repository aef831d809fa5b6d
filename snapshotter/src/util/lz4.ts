/**
 * lz4-napi, loaded after its allocator's options are set (`lz4-allocator-env.ts`): every module
 * imports LZ4 from here, never from 'lz4-napi' directly.
 */
import { LZ4_ALLOCATOR_ENV } from './lz4-allocator-env.js';
export { compress, compressSync, uncompress, uncompressSync } from 'lz4-napi';

/** The allocator options in force for this process's LZ4 (tests, diagnostics). */
export const lz4AllocatorEnv = LZ4_ALLOCATOR_ENV;
