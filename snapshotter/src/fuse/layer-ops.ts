/**
 * The read-only file system operations of one layer over an index view and a layer reader, for
 * both FUSE drivers: path-based in fuse-native's callback style (`ops()`), and entry-based for the
 * kernel driver (`entryOfNode`, `child`, `stat`, `readEntry`, …), where a node id is the entry's
 * row in the index plus one. Metadata comes from the index alone; only reads touch the layer bytes,
 * straight into the buffer the kernel gets. Failures are logged with the path and layer here and
 * leave as a bare errno through `toErrno`.
 */
import type { Entry } from '../clip/types.js';
import { dataCorrupt, findClipError, kindOf, messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import type { DiskRange, LayerReader } from '../storage/layer-reader.js';
import type { ReadActivitySink } from '../storage/read-activity.js';
import { dataRange, statOf, type FuseStat } from './entry-stat.js';
import { getXattr, listXattrs } from './entry-xattrs.js';
import { ERRNO, toErrno } from './errno.js';
import { recordFuseError } from '../telemetry/index.js';
import { parentPath, toIndexPath } from './fuse-path.js';
import { HandleTable } from './handle-table.js';
import type { IndexView } from './index-view.js';
import type { FuseOps, FuseStatfs } from './native-fuse.js';
import { readOnlyOps } from './read-only-ops.js';

const O_ACCMODE = 0o3;
const O_RDONLY = 0o0;
const O_TRUNC = 0o1000;
const W_OK = 2;
const ST_RDONLY = 1;
const NAME_MAX = 255;

/** Options of `LayerOps`. */
export interface LayerOpsOptions {
  view: IndexView;
  reader: LayerReader;
  /** Name used in logs (usually the diffID). */
  layer: string;
  logger?: Logger | undefined;
  /** Owner translation for a user-namespaced container's view of the layer; absent = as stored. */
  ids?: IdTranslation | undefined;
  /**
   * libfuse driver: hears of each request (reads from start to reply, the rest as they come), so
   * background work yields to them. The kernel driver's session reports its requests itself.
   */
  activity?: ReadActivitySink | undefined;
}

/**
 * Container uid/gid → host uid/gid. The kernel's permission checks (`default_permissions`) and
 * overlayfs copy-up then see the owners a user-namespaced container needs, without a chown.
 */
export interface IdTranslation {
  uid(containerUid: number): number;
  gid(containerGid: number): number;
}

/** The operations table of one mounted layer, with its open handles. */
export class LayerOps {
  readonly #view: IndexView;
  readonly #reader: LayerReader;
  readonly #layer: string;
  readonly #log: Logger;
  readonly #ids: IdTranslation | undefined;
  readonly #activity: ReadActivitySink | undefined;
  readonly #handles = new HandleTable();
  #kernelHandles = 0;
  #closed = false;

  constructor(opts: LayerOpsOptions) {
    this.#view = opts.view;
    this.#reader = opts.reader;
    this.#layer = opts.layer;
    this.#log = opts.logger ?? silentLogger();
    this.#ids = opts.ids;
    this.#activity = opts.activity;
  }

  /** Number of open file and directory handles. */
  get openHandles(): number {
    return this.#handles.size + this.#kernelHandles;
  }

  /** Refuse every further request (after unmount, while a lazily detached mount drains). */
  close(): void {
    this.#closed = true;
    this.#handles.clear();
  }

  /** The table to hand to fuse-native. */
  ops(): FuseOps {
    const a = this.#activity;
    // Metadata answers come from the index at once: noting the time is enough.
    const touch = (): void => a?.touch();
    return {
      ...readOnlyOps(),
      init: (cb) => cb(0),
      getattr: (path, cb) => (touch(), this.#getattr(path, cb)),
      readdir: (path, cb) => (touch(), this.#readdir(path, cb)),
      open: (path, flags, cb) => (touch(), this.#open(path, flags, cb)),
      opendir: (path, _flags, cb) => (touch(), this.#opendir(path, cb)),
      read: a
        ? (path, fd, buf, len, pos, cb) => {
          a.begin();
          this.#read(path, fd, buf, len, pos, (n) => {
            a.end();
            cb(n);
          });
        }
        : (path, fd, buf, len, pos, cb) => this.#read(path, fd, buf, len, pos, cb),
      readlink: (path, cb) => (touch(), this.#readlink(path, cb)),
      getxattr: (path, name, _position, cb) => (touch(), this.#getxattr(path, name, cb)),
      listxattr: (path, cb) => (touch(), this.#listxattr(path, cb)),
      statfs: (_path, cb) => cb(0, this.statfs()),
      release: (_path, fd, cb) => cb(this.#release(fd)),
      releasedir: (_path, fd, cb) => cb(this.#release(fd)),
      access: (path, mode, cb) => (touch(), this.#access(path, mode, cb)),
    };
  }

  /** The entry at a kernel path, or a negative errno. */
  entry(kernelPath: string): Entry | number {
    if (this.#closed) return ERRNO.EIO;
    let path: string;
    try {
      path = toIndexPath(kernelPath);
    } catch (err) {
      this.#log.warn({ layer: this.#layer, path: kernelPath, err: messageOf(err) }, 'fuse: refused path');
      return toErrno(kindOf(err));
    }
    return this.#view.lookup(path) ?? this.#missing(path);
  }

  // ENOTDIR when some ancestor exists but is not a directory, as a local filesystem answers.
  #missing(path: string): number {
    for (let p = parentPath(path); p !== ''; p = parentPath(p)) {
      const e = this.#view.lookup(p);
      if (e !== undefined) return e.type === 'dir' ? ERRNO.ENOENT : ERRNO.ENOTDIR;
    }
    return ERRNO.ENOENT;
  }

  /**
   * The entry behind a kernel node id (row + 1: the root, row 0, is FUSE_ROOT_ID), or a negative
   * errno. Derived from the index alone, so any process holding the same index answers the same.
   */
  entryOfNode(nodeid: number): Entry | number {
    if (this.#closed) return ERRNO.EIO;
    const row = nodeid - 1;
    if (!Number.isSafeInteger(row) || row < 0 || row >= this.#view.meta.entryCount) return ERRNO.ESTALE;
    return this.#view.entryAt(row);
  }

  /** The node id of an entry (see `entryOfNode`). */
  nodeOf(e: Entry): number {
    return e.index + 1;
  }

  /** The entry `name` in directory `dir`, undefined when absent, or a negative errno. */
  child(dir: Entry, name: string): Entry | undefined | number {
    if (this.#closed) return ERRNO.EIO;
    if (dir.type !== 'dir') return ERRNO.ENOTDIR;
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) return ERRNO.EINVAL;
    if (Buffer.byteLength(name) > NAME_MAX) return ERRNO.ENAMETOOLONG;
    return this.#view.lookup(dir.path === '' ? name : `${dir.path}/${name}`);
  }

  /** A directory's children in index order (the readdir order of both drivers). */
  children(dir: Entry): readonly Entry[] {
    return dir.type === 'dir' ? this.#view.readdir(dir.path) ?? [] : [];
  }

  /** A directory's parent (the root is its own). */
  parentOf(dir: Entry): Entry {
    return dir.path === '' ? dir : this.#view.lookup(parentPath(dir.path)) ?? dir;
  }

  /**
   * Read up to `len` bytes of a file entry at `pos` into `buf` at `at`: the byte count, 0 at or
   * past the end, or a negative errno (logged).
   */
  async readEntry(e: Entry, buf: Buffer, at: number, len: number, pos: number): Promise<number> {
    if (this.#closed) return ERRNO.EIO;
    const range = dataRange(e);
    if (range === undefined) return e.type === 'dir' ? ERRNO.EISDIR : ERRNO.EINVAL;
    if (pos >= range.size) return 0;
    const want = Math.min(len, range.size - pos);
    const target = at === 0 ? buf : buf.subarray(at);
    try {
      const got = await this.#readFull(target, want, range.dataOffset + pos);
      return got === want ? got : this.#fail('read', e.path, truncated(e.path, range.dataOffset + pos + got));
    } catch (err) {
      return this.#fail('read', e.path, err);
    }
  }

  /**
   * Where up to `len` bytes of a file at `pos` lie in a local file, when the layer has them all on
   * disk (see LayerReader.diskRange); `length` is what the read returns (clamped to the file).
   */
  diskRangeOf(e: Entry, len: number, pos: number): (DiskRange & { length: number }) | undefined {
    if (this.#closed || this.#reader.diskRange === undefined) return undefined;
    const range = dataRange(e);
    if (range === undefined || pos >= range.size) return undefined;
    const length = Math.min(len, range.size - pos);
    const r = this.#reader.diskRange(range.dataOffset + pos, length);
    return r && { fd: r.fd, position: r.position, served: r.served, length };
  }

  /** An extended attribute's value, or undefined. */
  xattr(e: Entry, name: string): Buffer | undefined {
    return getXattr(this.#view, e, name);
  }

  /** An entry's extended attribute names. */
  xattrNames(e: Entry): string[] {
    return listXattrs(this.#view, e);
  }

  /** 0, or EROFS when `mode` asks for write access (the kernel checks the mode bits itself). */
  accessOf(mode: number): number {
    return (mode & W_OK) !== 0 ? ERRNO.EROFS : 0;
  }

  /** Count a handle the kernel driver opened (for `openHandles`; nothing depends on it). */
  noteOpen(delta: 1 | -1): void {
    this.#kernelHandles = Math.max(0, this.#kernelHandles + delta);
  }

  #getattr(path: string, cb: (err: number, stat?: FuseStat) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    cb(0, this.stat(e));
  }

  /** The `struct stat` of an entry as this mount shows it (owners translated). */
  stat(e: Entry): FuseStat {
    const st = statOf(e);
    if (this.#ids === undefined) return st;
    st.uid = this.#ids.uid(st.uid);
    st.gid = this.#ids.gid(st.gid);
    return st;
  }

  #readdir(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void {
    const dir = this.entry(path);
    if (typeof dir === 'number') return cb(dir);
    if (dir.type !== 'dir') return cb(ERRNO.ENOTDIR);
    const children = this.#view.readdir(dir.path) ?? [];
    const parent = dir.path === '' ? dir : this.#view.lookup(parentPath(dir.path)) ?? dir;
    const names = new Array<string>(children.length + 2);
    const stats = new Array<FuseStat>(children.length + 2);
    names[0] = '.';
    stats[0] = this.stat(dir);
    names[1] = '..';
    stats[1] = this.stat(parent);
    for (let i = 0; i < children.length; i++) {
      const c = children[i] as Entry;
      names[i + 2] = c.name;
      stats[i + 2] = this.stat(c);
    }
    cb(0, names, stats);
  }

  #open(path: string, flags: number, cb: (err: number, fd?: number) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) return cb(ERRNO.EROFS);
    if (e.type === 'dir') return cb(ERRNO.EISDIR);
    const range = dataRange(e);
    cb(0, this.#handles.open({ path, kind: 'file', dataOffset: range?.dataOffset ?? 0, size: range?.size ?? 0 }));
  }

  #opendir(path: string, cb: (err: number, fd?: number) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    if (e.type !== 'dir') return cb(ERRNO.ENOTDIR);
    cb(0, this.#handles.open({ path, kind: 'dir', dataOffset: 0, size: 0 }));
  }

  #read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void {
    const h = this.#closed ? undefined : this.#handles.get(fd);
    if (h === undefined) return cb(this.#closed ? ERRNO.EIO : ERRNO.EBADF);
    if (h.kind !== 'file') return cb(ERRNO.EISDIR);
    if (pos >= h.size) return cb(0);
    const want = Math.min(len, h.size - pos);
    this.#readFull(buf, want, h.dataOffset + pos).then(
      (got) => cb(got === want ? got : this.#fail('read', path, truncated(path, h.dataOffset + pos + got))),
      (err: unknown) => cb(this.#fail('read', path, err)),
    );
  }

  // A LayerReader may return short counts before the end; the kernel would take one as EOF.
  // What the page cache holds is copied at once; only the rest waits for the reader's read.
  async #readFull(buf: Buffer, want: number, offset: number): Promise<number> {
    let done = this.#reader.readNow?.(buf, 0, want, offset) ?? 0;
    while (done < want) {
      const got = await this.#reader.read(buf, done, want - done, offset + done);
      if (got <= 0) break;
      done += got;
    }
    return done;
  }

  #readlink(path: string, cb: (err: number, target?: string) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    if (e.type !== 'symlink') return cb(ERRNO.EINVAL);
    cb(0, e.target);
  }

  #getxattr(path: string, name: string, cb: (err: number, value?: Buffer) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    const value = getXattr(this.#view, e, name);
    if (value === undefined) return cb(ERRNO.ENODATA);
    cb(0, value);
  }

  #listxattr(path: string, cb: (err: number, names?: string[]) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    cb(0, listXattrs(this.#view, e));
  }

  /** The layer as `struct statvfs`: its size and entries, nothing free. */
  statfs(): FuseStatfs {
    const blocks = Math.min(0xffff_ffff, Math.ceil(this.#view.meta.uncompressedSize / 4096));
    const files = Math.min(0xffff_ffff, this.#view.meta.entryCount);
    return { bsize: 4096, frsize: 4096, blocks, bfree: 0, bavail: 0, files, ffree: 0, favail: 0, fsid: 0, flag: ST_RDONLY, namemax: NAME_MAX };
  }

  #release(fd: number): number {
    this.#handles.release(fd);
    return 0;
  }

  #access(path: string, mode: number, cb: (result: number) => void): void {
    const e = this.entry(path);
    if (typeof e === 'number') return cb(e);
    cb(this.accessOf(mode));
  }

  #fail(op: string, path: string, err: unknown): number {
    const errno = toErrno(kindOf(err));
    recordFuseError(op, errno);
    this.#log.error({ layer: this.#layer, op, path, errno, code: findClipError(err)?.code, err: messageOf(err) }, 'fuse: request failed');
    return errno;
  }
}

function truncated(path: string, offset: number): Error {
  return dataCorrupt('CLIP_FUSE_SHORT_READ', `layer data for ${path} ends early at offset ${offset}`);
}
