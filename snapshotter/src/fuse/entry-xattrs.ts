/**
 * Extended attributes as the filesystem presents them: the ones stored in the index, plus
 * `trusted.overlay.opaque=y` on opaque directories so overlayfs hides the lower layers' contents.
 */
import type { Entry } from '../clip/types.js';
import type { IndexView } from './index-view.js';

export const OPAQUE_XATTR = 'trusted.overlay.opaque';
const OPAQUE_VALUE = Buffer.from('y');

/** Value of one attribute, or undefined when the entry has none by that name. */
export function getXattr(view: IndexView, e: Entry, name: string): Buffer | undefined {
  if (e.type === 'dir' && e.opaque && name === OPAQUE_XATTR) return OPAQUE_VALUE;
  if (e.xattrCount === 0) return undefined;
  for (const x of view.xattrs(e)) if (x.name === name) return x.value;
  return undefined;
}

/** Names of an entry's attributes, the synthesized opaque marker included. */
export function listXattrs(view: IndexView, e: Entry): string[] {
  const names = e.xattrCount === 0 ? [] : view.xattrs(e).map((x) => x.name);
  if (e.type === 'dir' && e.opaque && !names.includes(OPAQUE_XATTR)) names.push(OPAQUE_XATTR);
  return names;
}
