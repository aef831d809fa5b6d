/**
 * The slice of the clip index reader the filesystem needs. `ClipIndexReader` satisfies it as is;
 * unit tests hand in a small in-memory fake.
 */
import type { Entry, LayerMeta, Xattr } from '../clip/types.js';

/** Read-only view of one layer's index. Paths are relative; '' is the root. */
export interface IndexView {
  readonly meta: LayerMeta;
  /** The entry at a path, or undefined. */
  lookup(path: string): Entry | undefined;
  /** Direct children of a directory; undefined when the path is not a directory. */
  readdir(path: string): readonly Entry[] | undefined;
  /** The entry at row `i` (0 = the root); rows are stable for a given index (kernel node ids). */
  entryAt(i: number): Entry;
  /** Extended attributes stored for an entry. */
  xattrs(entry: Entry): readonly Xattr[];
}
