/**
 * Normalization and validation of tar member names. Index paths are relative, '/'-separated,
 * without '.' or empty components; '' is the root. Anything that could escape the layer root is
 * rejected rather than repaired.
 */
import { invalidArgument, type CodeOf } from '../errors/index.js';

/** Longest path (in UTF-8 bytes) the index accepts; Linux PATH_MAX. */
export const MAX_PATH_BYTES = 4096;

/** Normalize a tar member name; throws invalid_argument for `..`, absolute paths, NUL and overlong names. */
export function normalizePath(raw: string, what = 'path'): string {
  if (raw.includes('\0')) throw bad('CLIP_TAR_BAD_PATH', what, raw, 'contains NUL');
  if (raw.startsWith('/')) throw bad('CLIP_TAR_ABSOLUTE_PATH', what, raw, 'is absolute');
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) {
    throw bad('CLIP_TAR_NAME_TOO_LONG', what, raw.slice(0, 64) + '…', `is longer than ${MAX_PATH_BYTES} bytes`);
  }
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw bad('CLIP_TAR_PATH_ESCAPE', what, raw, "has a '..' component");
    parts.push(part);
  }
  return parts.join('/');
}

/** Parent path of a normalized path ('' for top-level entries). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** Last component of a normalized path. */
export function baseOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

function bad(code: CodeOf<'invalid_argument'>, what: string, raw: string, detail: string): Error {
  return invalidArgument(code, `tar entry ${what} ${JSON.stringify(raw)} ${detail}`);
}
