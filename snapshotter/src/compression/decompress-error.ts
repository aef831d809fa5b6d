/** The one error of a layer blob that does not decompress, whichever codec and whoever reads it. */
import { dataCorrupt, type ClipError } from '../errors/index.js';

/** The stable code of a gzip or zstd stream that is invalid or cut short. */
export const DECOMPRESS_FAILED = 'CLIP_LAYER_DECOMPRESS_FAILED';

/** `data_corrupt` / `CLIP_LAYER_DECOMPRESS_FAILED` with `message`. */
export function decompressFailed(message: string, cause?: unknown): ClipError {
  return dataCorrupt(DECOMPRESS_FAILED, message, cause);
}
