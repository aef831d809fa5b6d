/**
 * Kernel paths to index paths. The kernel hands us absolute, already-resolved paths relative to the
 * mount; anything else (`.`/`..` components, empty components, NUL) is refused rather than
 * repaired, so no request can name something outside the layer.
 */
import { invalidArgument } from '../errors/index.js';

/** Index path for a kernel path ('/a/b' → 'a/b', '/' → ''); throws invalid_argument when malformed. */
export function toIndexPath(kernelPath: string): string {
  if (kernelPath === '/') return '';
  if (kernelPath.charCodeAt(0) !== 0x2f || !isClean(kernelPath)) {
    throw invalidArgument('CLIP_FUSE_BAD_PATH', `fuse path ${JSON.stringify(kernelPath)}`);
  }
  return kernelPath.slice(1);
}

/** Parent of an index path ('' for top-level entries and the root). */
export function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

// Scans once without splitting so the common case allocates nothing.
function isClean(p: string): boolean {
  if (p.length > 1 && p.charCodeAt(p.length - 1) === 0x2f) return false;
  if (p.includes('\0') || p.includes('//')) return false;
  let start = 1;
  while (start <= p.length) {
    let end = p.indexOf('/', start);
    if (end < 0) end = p.length;
    const len = end - start;
    if (len === 1 && p.charCodeAt(start) === 0x2e) return false;
    if (len === 2 && p.charCodeAt(start) === 0x2e && p.charCodeAt(start + 1) === 0x2e) return false;
    start = end + 1;
  }
  return true;
}
