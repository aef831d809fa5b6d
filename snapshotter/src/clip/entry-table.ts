/**
 * Accumulates tar members into index entries with extraction semantics: later members replace
 * earlier ones, a non-directory replacing a directory drops its subtree, hardlinks resolve to the
 * inode of an earlier member, whiteouts/opaque markers become their own kind/flag, and parents the
 * tar omits are synthesized (0755) when the table is finished.
 */
import { invalidArgument } from '../errors/index.js';
import { DEFAULT_CLIP_LIMITS } from './limits.js';
import { MAX_PATH_BYTES, baseOf, normalizePath, parentOf } from './paths.js';
import type { TarEntry } from './tar-parser.js';
import type { BuiltEntry, EntryType } from './types.js';

const OPAQUE = '.wh..wh..opq';
const WHITEOUT_META = '.wh..wh.';
const WHITEOUT = '.wh.';

/** Collects entries from a tar stream; `finish` returns them sorted for encoding. */
export class EntryTable {
  #byPath = new Map<string, BuiltEntry>();
  #nextGroup = 1;
  readonly #maxEntries: number;

  /** `maxEntries` bounds the table, synthesized parents included (a deep path adds one per level). */
  constructor(maxEntries: number = DEFAULT_CLIP_LIMITS.maxEntries) {
    this.#maxEntries = maxEntries;
  }

  /** Number of entries held so far. */
  get size(): number {
    return this.#byPath.size;
  }

  /** Add one tar member. */
  add(e: TarEntry): void {
    const path = normalizePath(e.name);
    if (path.includes(WHITEOUT)) {
      if (this.#addWhiteoutish(e, path)) return;
    }
    const type = entryType(e, path);
    if (path === '' && type !== 'dir') throw invalidArgument('CLIP_TAR_BAD_ROOT', `tar entry ${JSON.stringify(e.name)} names the root but is a ${type}`);
    if (type === 'hardlink') return this.#addHardlink(e, path);
    const built = this.#fromTar(e, path, type);
    if (type === 'symlink') built.link = checkLink(e.linkname, e.name);
    this.#insert(path, built);
  }

  /** Synthesize missing parents and return the entries sorted by (parent, name), root first. */
  finish(): BuiltEntry[] {
    if (!this.#byPath.has('')) this.#byPath.set('', this.#implicitDir(''));
    for (const [path, entry] of this.#byPath) {
      if (path === '') continue;
      this.#ensureParents(path, entry);
    }
    return sortEntries([...this.#byPath.values()]);
  }

  /** Handles `.wh.*` names; returns false when the path is an ordinary one after all. */
  #addWhiteoutish(e: TarEntry, path: string): boolean {
    const base = baseOf(path);
    const parent = parentOf(path);
    if (path.split('/').some((p, i, all) => p.startsWith(WHITEOUT_META) && !(i === all.length - 1 && p === OPAQUE))) {
      return true; // reserved metadata (e.g. aufs `.wh..wh.plnk`): not part of the filesystem
    }
    if (base === OPAQUE) {
      this.#markOpaque(parent, e);
      return true;
    }
    if (!base.startsWith(WHITEOUT)) return false;
    const name = base.slice(WHITEOUT.length);
    if (name === '' || name === '.' || name === '..') throw invalidArgument('CLIP_TAR_BAD_WHITEOUT', `tar entry ${JSON.stringify(e.name)} is a whiteout without a name`);
    const target = parent === '' ? name : `${parent}/${name}`;
    const existing = this.#byPath.get(target);
    // A whiteout hides lower layers only; a member of this layer with the same name wins.
    if (existing !== undefined && existing.type !== 'whiteout') return true;
    const built = this.#fromTar(e, target, 'whiteout');
    built.size = 0;
    built.dataOffset = 0;
    this.#byPath.set(target, built);
    return true;
  }

  #markOpaque(dir: string, e: TarEntry): void {
    const existing = this.#byPath.get(dir);
    if (existing === undefined) {
      const d = this.#implicitDir(dir);
      d.opaque = true;
      this.#byPath.set(dir, d);
    } else if (existing.type === 'dir') existing.opaque = true;
    else throw invalidArgument('CLIP_TAR_PARENT_NOT_DIR', `tar entry ${JSON.stringify(e.name)}: opaque marker in a ${existing.type}`);
  }

  #addHardlink(e: TarEntry, path: string): void {
    const targetPath = normalizePath(e.linkname, 'hardlink target');
    if (targetPath === path && this.#byPath.has(path)) return;
    const t = this.#byPath.get(targetPath);
    if (t === undefined) {
      throw invalidArgument('CLIP_TAR_HARDLINK_MISSING', `tar entry ${JSON.stringify(e.name)} hardlinks to ${JSON.stringify(e.linkname)}, which is not an earlier entry`);
    }
    if (t.type === 'dir' || t.type === 'whiteout') {
      throw invalidArgument('CLIP_TAR_HARDLINK_BAD_TARGET', `tar entry ${JSON.stringify(e.name)} hardlinks to a ${t.type}`);
    }
    const copy: BuiltEntry = { ...t, path, xattrs: t.xattrs, opaque: false };
    if (t.type !== 'symlink') {
      copy.type = 'hardlink';
      copy.linkedType = t.type === 'hardlink' ? t.linkedType : t.type;
      copy.link = targetPath;
    }
    this.#insert(path, copy);
  }

  #insert(path: string, built: BuiltEntry): void {
    const existing = this.#byPath.get(path);
    if (existing?.type === 'dir') {
      if (built.type === 'dir') built.opaque ||= existing.opaque;
      else this.#dropSubtree(path);
    }
    this.#byPath.set(path, built);
  }

  #dropSubtree(dir: string): void {
    const prefix = dir === '' ? '' : `${dir}/`;
    for (const p of this.#byPath.keys()) if (p.startsWith(prefix) && p !== dir) this.#byPath.delete(p);
  }

  #ensureParents(path: string, child: BuiltEntry): void {
    let p = parentOf(path);
    for (;;) {
      const existing = this.#byPath.get(p);
      if (existing !== undefined) {
        if (existing.type !== 'dir') {
          throw invalidArgument('CLIP_TAR_PARENT_NOT_DIR', `tar entry ${JSON.stringify(child.path)}: parent ${JSON.stringify(p)} is a ${existing.type}`);
        }
        return; // its own ancestors are checked when the loop reaches it
      }
      this.#byPath.set(p, this.#implicitDir(p));
      if (this.#byPath.size > this.#maxEntries) {
        throw invalidArgument('CLIP_TAR_TOO_MANY_ENTRIES', `layer has more than ${this.#maxEntries} entries with its implied parent directories`);
      }
      if (p === '') return;
      p = parentOf(p);
    }
  }

  #fromTar(e: TarEntry, path: string, type: EntryType): BuiltEntry {
    const hasData = type === 'file';
    return {
      path, type, linkedType: undefined, mode: e.mode, uid: e.uid, gid: e.gid, uname: e.uname, gname: e.gname,
      mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, size: hasData ? e.size : 0, dataOffset: hasData ? e.dataOffset : 0,
      devMajor: type === 'char' || type === 'block' ? e.devMajor : 0,
      devMinor: type === 'char' || type === 'block' ? e.devMinor : 0,
      link: '', xattrs: e.xattrs, opaque: false, inodeGroup: this.#nextGroup++,
    };
  }

  #implicitDir(path: string): BuiltEntry {
    return {
      path, type: 'dir', linkedType: undefined, mode: 0o755, uid: 0, gid: 0, uname: '', gname: '', mtimeSec: 0,
      mtimeNsec: 0, size: 0, dataOffset: 0, devMajor: 0, devMinor: 0, link: '', xattrs: [], opaque: false,
      inodeGroup: this.#nextGroup++,
    };
  }
}

function entryType(e: TarEntry, path: string): EntryType {
  switch (e.typeflag) {
    case '0': case '\0': case '7':
      return e.name.endsWith('/') ? 'dir' : 'file'; // old tars mark directories by a trailing slash
    case '1': return 'hardlink';
    case '2': return 'symlink';
    case '3': return 'char';
    case '4': return 'block';
    case '5': case 'D': return 'dir';
    case '6': return 'fifo';
    default:
      throw invalidArgument('CLIP_TAR_UNSUPPORTED_TYPE', `tar entry ${JSON.stringify(path)} has unsupported type '${e.typeflag}'`);
  }
}

function checkLink(link: string, name: string): string {
  if (link.includes('\0') || Buffer.byteLength(link) > MAX_PATH_BYTES) {
    throw invalidArgument('CLIP_TAR_BAD_LINK', `tar entry ${JSON.stringify(name)} has an invalid symlink target`);
  }
  return link;
}

/** Sort by (parent, name) in UTF-8 byte order so every directory's children are contiguous. */
function sortEntries(entries: BuiltEntry[]): BuiltEntry[] {
  const keyed = entries.map((e) => {
    const buf = Buffer.from(e.path);
    const slash = buf.lastIndexOf(0x2f);
    return { e, buf, split: slash };
  });
  keyed.sort((a, b) => {
    if (a.e.path === '') return b.e.path === '' ? 0 : -1;
    if (b.e.path === '') return 1;
    const ap = a.split < 0 ? 0 : a.split;
    const bp = b.split < 0 ? 0 : b.split;
    const c = a.buf.compare(b.buf, 0, bp, 0, ap);
    if (c !== 0) return c;
    return a.buf.compare(b.buf, b.split + 1, b.buf.length, a.split + 1, a.buf.length);
  });
  return keyed.map((k) => k.e);
}
