/**
 * Read access to a decoded clip index. Rows stay in the decoded payload; lookups binary-search
 * the (parent, name)-sorted table comparing bytes in place, and directory listings are contiguous
 * row ranges, so no per-entry objects exist until a caller asks for one.
 */
import { FLAG_OPAQUE, ROW, TYPE_CODES, XATTR_ROW, compareBytes, readU64 } from './index-format.js';
import type { Entry, EntryType, LayerMeta, LinkedType, Xattr } from './types.js';

/** Where the sections live inside the inflated payload; produced by `decodeIndex`. */
export interface IndexLayout {
  readonly payload: Buffer;
  readonly meta: LayerMeta;
  readonly stringsOff: number;
  readonly stringsLen: number;
  readonly entriesOff: number;
  readonly xattrsOff: number;
  readonly xattrCount: number;
  /** Body of the optional gzip-checkpoints section (opaque here; see zran/). */
  readonly gzipCheckpoints?: Buffer | undefined;
  /** Body of the optional zstd-frames section (opaque here; see zran/). */
  readonly zstdFrames?: Buffer | undefined;
}

const MAX_QUERY_BYTES = 4096 * 4;
/**
 * Where a looked-up path is encoded, shared by every reader: a lookup uses it only while it runs
 * (no await), and one per reader was 16 KiB per mounted layer (3.2 MB with 200 lazy layers).
 */
const SCRATCH = Buffer.alloc(MAX_QUERY_BYTES);

/** A validated, decoded index. Obtain one from `decodeIndex`. */
export class ClipIndexReader {
  readonly meta: LayerMeta;
  #l: IndexLayout;
  #p: Buffer;

  constructor(layout: IndexLayout) {
    this.#l = layout;
    this.#p = layout.payload;
    this.meta = layout.meta;
  }

  /** The encoded gzip checkpoint table, when the index has one (decode with zran's `decodeCheckpointTable`). */
  get gzipCheckpoints(): Buffer | undefined {
    return this.#l.gzipCheckpoints;
  }

  /** The encoded zstd frame table, when the index has one (decode with zran's `decodeZstdFrameTable`). */
  get zstdFrames(): Buffer | undefined {
    return this.#l.zstdFrames;
  }

  /** Number of entries, the root included. */
  get entryCount(): number {
    return this.meta.entryCount;
  }

  /** Row index of a path ('' or '/' is the root; leading and trailing '/' are ignored), or -1. */
  indexOf(path: string): number {
    if (path.length > MAX_QUERY_BYTES) return -1;
    const q = SCRATCH;
    let end = q.write(path, 0, 'utf8');
    if (end >= MAX_QUERY_BYTES) return -1;
    let start = 0;
    while (start < end && q[start] === 0x2f) start++;
    while (end > start && q[end - 1] === 0x2f) end--;
    if (start === end) return 0;
    const slash = q.lastIndexOf(0x2f, end - 1);
    const qParentEnd = slash < start ? start : slash;
    const qName = slash < start ? start : slash + 1;
    let lo = 1;
    let hi = this.meta.entryCount - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = this.#compareTo(mid, start, qParentEnd, qName, end);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The entry at a path, or undefined. */
  lookup(path: string): Entry | undefined {
    const i = this.indexOf(path);
    return i < 0 ? undefined : this.entryAt(i);
  }

  /** Direct children of a directory, in byte order of their names; undefined if not a directory. */
  readdir(path: string): Entry[] | undefined {
    const i = this.indexOf(path);
    if (i < 0 || this.typeAt(i) !== 'dir') return undefined;
    const [start, count] = this.childRange(i);
    const out: Entry[] = new Array(count);
    for (let k = 0; k < count; k++) out[k] = this.entryAt(start + k);
    return out;
  }

  /** [first row, count] of a directory's children (count 0 for non-directories). */
  childRange(i: number): [number, number] {
    const r = this.#row(i);
    return [this.#p.readUInt32LE(r + ROW.childStart), this.#p.readUInt32LE(r + ROW.childCount)];
  }

  /** Entry type of a row without materialising the entry. */
  typeAt(i: number): EntryType {
    return TYPE_CODES[this.#p.readUInt8(this.#row(i) + ROW.type)] as EntryType;
  }

  /** Inode number of a path (hardlinks share their target's), or undefined. */
  inodeOf(path: string): number | undefined {
    const i = this.indexOf(path);
    return i < 0 ? undefined : this.#p.readUInt32LE(this.#row(i) + ROW.inode);
  }

  /** Link count of a path (directories: 2 + subdirectories), or undefined. */
  linkCount(path: string): number | undefined {
    const i = this.indexOf(path);
    return i < 0 ? undefined : this.#p.readUInt32LE(this.#row(i) + ROW.nlink);
  }

  /** Extended attributes of an entry; values are views into the index (do not mutate). */
  xattrs(entry: Entry | number): Xattr[] {
    const r = this.#row(typeof entry === 'number' ? entry : entry.index);
    const start = this.#p.readUInt32LE(r + ROW.xattrStart);
    const count = this.#p.readUInt32LE(r + ROW.xattrCount);
    const out: Xattr[] = [];
    for (let x = start; x < start + count; x++) out.push(this.#xattrAt(x));
    return out;
  }

  /** The entry at row `i` (0 = root). Throws RangeError outside [0, entryCount). */
  entryAt(i: number): Entry {
    const r = this.#row(i);
    const p = this.#p;
    const pathOff = p.readUInt32LE(r + ROW.pathOff);
    const path = this.#str(pathOff, p.readUInt16LE(r + ROW.pathLen));
    const base = {
      index: i,
      path,
      name: path.slice(path.lastIndexOf('/') + 1),
      mode: p.readUInt32LE(r + ROW.mode),
      uid: p.readUInt32LE(r + ROW.uid),
      gid: p.readUInt32LE(r + ROW.gid),
      uname: this.#str(p.readUInt32LE(r + ROW.unameOff), p.readUInt16LE(r + ROW.unameLen)),
      gname: this.#str(p.readUInt32LE(r + ROW.gnameOff), p.readUInt16LE(r + ROW.gnameLen)),
      mtimeSec: p.readDoubleLE(r + ROW.mtimeSec),
      mtimeNsec: p.readUInt32LE(r + ROW.mtimeNsec),
      inode: p.readUInt32LE(r + ROW.inode),
      nlink: p.readUInt32LE(r + ROW.nlink),
      xattrCount: p.readUInt32LE(r + ROW.xattrCount),
    };
    return this.#typed(r, base);
  }

  #typed(r: number, base: Omit<Entry, 'type'>): Entry {
    const p = this.#p;
    const type = TYPE_CODES[p.readUInt8(r + ROW.type)] as EntryType;
    const link = (): string => this.#str(p.readUInt32LE(r + ROW.linkOff), p.readUInt16LE(r + ROW.linkLen));
    const size = (): number => readU64(p, r + ROW.sizeLo, r + ROW.sizeHi);
    const dataOffset = (): number => readU64(p, r + ROW.dataLo, r + ROW.dataHi);
    const devMajor = p.readUInt32LE(r + ROW.devMajor);
    const devMinor = p.readUInt32LE(r + ROW.devMinor);
    switch (type) {
      case 'file': return { ...base, type, size: size(), dataOffset: dataOffset() };
      case 'dir': return { ...base, type, opaque: (p.readUInt8(r + ROW.flags) & FLAG_OPAQUE) !== 0, childCount: p.readUInt32LE(r + ROW.childCount) };
      case 'symlink': return { ...base, type, target: link() };
      case 'hardlink': {
        const linkedType = TYPE_CODES[p.readUInt8(r + ROW.linkedType)] as LinkedType;
        return { ...base, type, target: link(), linkedType, size: size(), dataOffset: dataOffset(), devMajor, devMinor };
      }
      case 'char': case 'block': return { ...base, type, devMajor, devMinor };
      case 'fifo': case 'whiteout': return { ...base, type };
    }
  }

  #xattrAt(x: number): Xattr {
    const p = this.#p;
    const at = this.#l.xattrsOff + x * XATTR_ROW.bytes;
    const name = this.#str(p.readUInt32LE(at + XATTR_ROW.nameOff), p.readUInt16LE(at + XATTR_ROW.nameLen));
    const vOff = this.#l.stringsOff + p.readUInt32LE(at + XATTR_ROW.valueOff);
    return { name, value: p.subarray(vOff, vOff + p.readUInt32LE(at + XATTR_ROW.valueLen)) };
  }

  #row(i: number): number {
    if (!(i >= 0 && i < this.meta.entryCount) || !Number.isInteger(i)) throw new RangeError(`entry ${i} out of range`);
    return this.#l.entriesOff + i * ROW.bytes;
  }

  #str(off: number, len: number): string {
    return len === 0 ? '' : this.#p.toString('utf8', this.#l.stringsOff + off, this.#l.stringsOff + off + len);
  }

  /** Compare row i's (parent, name) with the query's: negative when the row sorts first. */
  #compareTo(i: number, qp0: number, qp1: number, qn0: number, qn1: number): number {
    const p = this.#p;
    const r = this.#l.entriesOff + i * ROW.bytes;
    const off = this.#l.stringsOff + p.readUInt32LE(r + ROW.pathOff);
    const nameStart = p.readUInt16LE(r + ROW.nameStart);
    const c = compareBytes(p, off, off + Math.max(0, nameStart - 1), SCRATCH, qp0, qp1);
    if (c !== 0) return c;
    return compareBytes(p, off + nameStart, off + p.readUInt16LE(r + ROW.pathLen), SCRATCH, qn0, qn1);
  }
}
