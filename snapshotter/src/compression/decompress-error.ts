/** The one error of a layer blob that does not decompress, whichever codec and whoever reads it. */
import { dataCorrupt, type ClipError } from '../errors/index.js';

/** `data_corrupt` / `CLIP_LAYER_DECOMPRESS_FAILED` with `message`. */
export function decompressFailed(message: string, cause?: unknown): ClipError {
  return dataCorrupt('CLIP_LAYER_DECOMPRESS_FAILED', message, cause);
}
