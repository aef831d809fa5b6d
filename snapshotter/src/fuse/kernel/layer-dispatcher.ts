/**
 * The file system requests of one layer on the kernel driver: each decoded request in, its reply
 * out, over LayerOps (the same logic the fuse-native driver uses). Nothing here lives longer than
 * a request except a small cache of directory listings: node ids are index rows and file handles
 * are node ids, so a process that loads the same index answers a connection it did not open.
 */
import type { Entry } from '../../clip/types.js';
import { S_IFMT } from '../entry-stat.js';
import { ERRNO } from '../errno.js';
import type { LayerOps } from '../layer-ops.js';
import { recycle, takeReplyBuffer } from './reply-buffers.js';
import {
  ATTR_OUT_BYTES, ENTRY_OUT_BYTES, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, MUTATING_OPS, OP, OPEN_OUT_BYTES, OUT_HEADER_BYTES,
  cString, direntBytes, errorReply, need, reply, statfsReply, ttlOf, writeHeader, writeAttrOut, writeDirent, writeEntryOut,
  type Request, type Ttl,
} from './wire.js';

const O_ACCMODE = 0o3;
const O_RDONLY = 0o0;
const O_TRUNC = 0o1000;
const LISTING_CACHE = 16;
/** Bound on a READ the kernel may ask (max_pages × 4 KiB is at most 1 MiB as negotiated; refuse more). */
const MAX_READ_BYTES = 4 << 20;

/**
 * Answers one request: its reply, or undefined for requests that take none and for replies the
 * handler already wrote through `sink`.
 */
export type RequestHandler = (req: Request, sink?: ReplySink) => Promise<Buffer | undefined>;

/** What a session offers a handler besides returning a reply buffer. */
export interface ReplySink {
  /**
   * Write a READ reply whose payload is `length` bytes of `fd` at `position`, moved by the kernel
   * (splice); false, with nothing written, when that cannot be done without waiting for a disk.
   */
  spliceRead(unique: bigint, fd: number, position: number, length: number): boolean;
}

/** Options of a layer's dispatcher. */
export interface DispatcherOptions {
  /** How long the kernel may cache entries, attributes and negative lookups. */
  ttlMs: number;
}

/** Requests of one layer mount → replies. */
export class LayerDispatcher {
  readonly #ops: LayerOps;
  readonly #ttl: Ttl;
  /** Last listings by node id: READDIR comes in pages and each page would list the directory again. */
  readonly #listings = new Map<number, readonly Entry[]>();

  constructor(ops: LayerOps, o: DispatcherOptions) {
    this.#ops = ops;
    this.#ttl = ttlOf(o.ttlMs);
  }

  /** The handler to give a KernelSession. */
  readonly handle: RequestHandler = async (req, sink) => {
    try {
      return await this.#dispatch(req, sink);
    } catch {
      // Only a malformed request body gets here (decoding throws a ClipError).
      return errorReply(req.unique, ERRNO.EINVAL);
    }
  };

  async #dispatch(req: Request, sink: ReplySink | undefined): Promise<Buffer | undefined> {
    if (MUTATING_OPS.has(req.opcode)) return errorReply(req.unique, ERRNO.EROFS);
    switch (req.opcode) {
      case OP.LOOKUP: return this.#lookup(req);
      case OP.GETATTR: return this.#node(req, (e) => this.#attrReply(req, e));
      case OP.READLINK: return this.#node(req, (e) => e.type === 'symlink' ? this.#bytes(req, Buffer.from(e.target)) : errorReply(req.unique, ERRNO.EINVAL));
      case OP.OPEN: return this.#open(req);
      case OP.READ: return this.#read(req, sink);
      case OP.OPENDIR: return this.#opendir(req);
      case OP.READDIR: return this.#readdir(req);
      case OP.RELEASE:
      case OP.RELEASEDIR:
        this.#ops.noteOpen(-1);
        return reply(req.unique, 0);
      case OP.FLUSH: return reply(req.unique, 0);
      case OP.STATFS: return this.#statfs(req);
      case OP.GETXATTR: return this.#getxattr(req);
      case OP.LISTXATTR: return this.#listxattr(req);
      case OP.ACCESS: return this.#node(req, () => errorReply(req.unique, this.#ops.accessOf(need(req.body, 8, 'ACCESS').readUInt32LE(0))));
      default: return errorReply(req.unique, ERRNO.ENOSYS);
    }
  }

  #node(req: Request, then: (e: Entry) => Buffer | Promise<Buffer>): Buffer | Promise<Buffer> {
    const e = this.#ops.entryOfNode(req.nodeid);
    return typeof e === 'number' ? errorReply(req.unique, e) : then(e);
  }

  #lookup(req: Request): Buffer {
    return this.#node(req, (dir) => {
      const c = this.#ops.child(dir, cString(req.body));
      if (typeof c === 'number') return errorReply(req.unique, c);
      const out = reply(req.unique, ENTRY_OUT_BYTES);
      // Absent: a negative entry the kernel caches like a positive one (the layer never changes).
      if (c === undefined) writeEntryOut(out, OUT_HEADER_BYTES, 0, undefined, this.#ttl, this.#ttl);
      else writeEntryOut(out, OUT_HEADER_BYTES, this.#ops.nodeOf(c), this.#ops.stat(c), this.#ttl, this.#ttl);
      return out;
    }) as Buffer;
  }

  #attrReply(req: Request, e: Entry): Buffer {
    const out = reply(req.unique, ATTR_OUT_BYTES);
    writeAttrOut(out, OUT_HEADER_BYTES, this.#ops.stat(e), this.#ttl);
    return out;
  }

  #bytes(req: Request, b: Buffer): Buffer {
    const out = reply(req.unique, b.length);
    b.copy(out, OUT_HEADER_BYTES);
    return out;
  }

  #openReply(req: Request, e: Entry, flags: number): Buffer {
    const out = reply(req.unique, OPEN_OUT_BYTES);
    // The file handle is the node id: a successor process needs no table to answer it.
    out.writeBigUInt64LE(BigInt(this.#ops.nodeOf(e)), OUT_HEADER_BYTES);
    out.writeUInt32LE(flags, OUT_HEADER_BYTES + 8);
    out.writeUInt32LE(0, OUT_HEADER_BYTES + 12);
    this.#ops.noteOpen(1);
    return out;
  }

  #open(req: Request): Buffer | Promise<Buffer> {
    const flags = need(req.body, 8, 'OPEN').readUInt32LE(0);
    return this.#node(req, (e) => {
      if ((flags & O_ACCMODE) !== O_RDONLY || (flags & O_TRUNC) !== 0) return errorReply(req.unique, ERRNO.EROFS);
      if (e.type === 'dir') return errorReply(req.unique, ERRNO.EISDIR);
      // Pages of an immutable file stay valid across opens.
      return this.#openReply(req, e, FOPEN_KEEP_CACHE);
    });
  }

  #opendir(req: Request): Buffer | Promise<Buffer> {
    return this.#node(req, (e) => (e.type === 'dir' ? this.#openReply(req, e, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR) : errorReply(req.unique, ERRNO.ENOTDIR)));
  }

  async #read(req: Request, sink: ReplySink | undefined): Promise<Buffer | undefined> {
    const body = need(req.body, 24, 'READ');
    const offset = Number(body.readBigUInt64LE(8));
    const size = Math.min(body.readUInt32LE(16), MAX_READ_BYTES);
    const e = this.#ops.entryOfNode(req.nodeid);
    if (typeof e === 'number') return errorReply(req.unique, e);
    // Cached on disk: the kernel moves the bytes from the disk cache's pages to the file's.
    const disk = sink && size > 0 ? this.#ops.diskRangeOf(e, size, offset) : undefined;
    if (disk && sink?.spliceRead(req.unique, disk.fd, disk.position, disk.length)) {
      disk.served(disk.length);
      return undefined;
    }
    const out = takeReplyBuffer(OUT_HEADER_BYTES + size);
    writeHeader(out, req.unique);
    let got: number;
    try {
      got = await this.#ops.readEntry(e, out, OUT_HEADER_BYTES, size, offset);
    } catch (err) {
      recycle(out);
      throw err;
    }
    if (got < 0) {
      recycle(out);
      return errorReply(req.unique, got);
    }
    out.writeUInt32LE(OUT_HEADER_BYTES + got, 0);
    return out.subarray(0, OUT_HEADER_BYTES + got);
  }

  #readdir(req: Request): Buffer | Promise<Buffer> {
    const body = need(req.body, 24, 'READDIR');
    const offset = Number(body.readBigUInt64LE(8));
    const size = Math.min(body.readUInt32LE(16), 1 << 20);
    return this.#node(req, (dir) => {
      if (dir.type !== 'dir') return errorReply(req.unique, ERRNO.ENOTDIR);
      const children = this.#listing(req.nodeid, dir, offset);
      const out = reply(req.unique, size);
      let at = OUT_HEADER_BYTES;
      // Cookies: entry k of ['.', '..', ...children] carries k + 1, the offset of the one after it.
      for (let k = offset; k < children.length + 2; k++) {
        const e = k === 0 ? dir : k === 1 ? this.#ops.parentOf(dir) : (children[k - 2] as Entry);
        const name = k === 0 ? '.' : k === 1 ? '..' : e.name;
        if (at + direntBytes(name) > OUT_HEADER_BYTES + size) break;
        const st = this.#ops.stat(e);
        at += writeDirent(out, at, st.ino, k + 1, (st.mode & S_IFMT) >>> 12, name);
      }
      out.writeUInt32LE(at, 0);
      return out.subarray(0, at);
    });
  }

  #listing(nodeid: number, dir: Entry, offset: number): readonly Entry[] {
    let l = offset === 0 ? undefined : this.#listings.get(nodeid);
    if (l === undefined) {
      l = this.#ops.children(dir);
      this.#listings.delete(nodeid);
      if (this.#listings.size >= LISTING_CACHE) this.#listings.delete(this.#listings.keys().next().value as number);
      this.#listings.set(nodeid, l);
    }
    return l;
  }

  #statfs(req: Request): Buffer {
    const s = this.#ops.statfs();
    return statfsReply(req.unique, { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: s.namemax, frsize: s.frsize });
  }

  #sized(req: Request, value: Buffer, want: number): Buffer {
    if (want === 0) {
      const out = reply(req.unique, 8);
      out.writeUInt32LE(value.length, OUT_HEADER_BYTES);
      out.writeUInt32LE(0, OUT_HEADER_BYTES + 4);
      return out;
    }
    if (value.length > want) return errorReply(req.unique, ERRNO.ERANGE);
    return this.#bytes(req, value);
  }

  #getxattr(req: Request): Buffer | Promise<Buffer> {
    const body = need(req.body, 9, 'GETXATTR');
    const want = body.readUInt32LE(0);
    const name = cString(body, 8);
    return this.#node(req, (e) => {
      const v = this.#ops.xattr(e, name);
      return v === undefined ? errorReply(req.unique, ERRNO.ENODATA) : this.#sized(req, v, want);
    });
  }

  #listxattr(req: Request): Buffer | Promise<Buffer> {
    const want = need(req.body, 8, 'LISTXATTR').readUInt32LE(0);
    return this.#node(req, (e) => {
      const names = this.#ops.xattrNames(e);
      return this.#sized(req, Buffer.from(names.map((n) => `${n}\0`).join('')), want);
    });
  }
}
