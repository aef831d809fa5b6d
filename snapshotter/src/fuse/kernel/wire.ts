/**
 * The FUSE kernel protocol's byte layout (linux/fuse.h, protocol 7.x): request headers and bodies
 * in, replies out. Pure functions over Buffers, little-endian as on every Linux FUSE host.
 */
import { dataCorrupt } from '../../errors/index.js';
import type { FuseStat } from '../entry-stat.js';

/** Opcodes the driver knows by name. */
export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9, UNLINK: 10,
  RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17, RELEASE: 18, FSYNC: 20,
  SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25, INIT: 26, OPENDIR: 27,
  READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32, SETLKW: 33, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40, BATCH_FORGET: 42, FALLOCATE: 43,
  READDIRPLUS: 44, RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47, SYNCFS: 50, TMPFILE: 51,
} as const;

/** Requests that change the file system: all answered EROFS. */
export const MUTATING_OPS: ReadonlySet<number> = new Set([
  OP.SETATTR, OP.SYMLINK, OP.MKNOD, OP.MKDIR, OP.UNLINK, OP.RMDIR, OP.RENAME, OP.LINK, OP.WRITE, OP.SETXATTR,
  OP.REMOVEXATTR, OP.CREATE, OP.FALLOCATE, OP.RENAME2, OP.COPY_FILE_RANGE, OP.TMPFILE,
]);

/** max_write we announce; the reader's buffer must hold a request this size plus its header. */
export const MAX_WRITE_BYTES = 128 * 1024;

/** The protocol this driver speaks (it answers INIT with at most this minor). */
export const KERNEL_MAJOR = 7;
export const OUR_MINOR = 31;

/** INIT flags (fuse_init_in/out.flags). */
export const INIT = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
} as const;

/** fuse_open_out.open_flags. */
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;

export const ROOT_ID = 1;
export const IN_HEADER_BYTES = 40;
export const OUT_HEADER_BYTES = 16;
export const ATTR_BYTES = 88;
export const ENTRY_OUT_BYTES = 40 + ATTR_BYTES;
export const ATTR_OUT_BYTES = 16 + ATTR_BYTES;
export const INIT_OUT_BYTES = 64;
export const OPEN_OUT_BYTES = 16;
export const STATFS_OUT_BYTES = 80;
const DIRENT_NAME_OFFSET = 24;

/** fuse_in_header plus the body that follows it. */
export interface Request {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
  body: Buffer;
}

/** Decode one request as read from /dev/fuse (one read returns exactly one request). */
export function decodeRequest(buf: Buffer): Request {
  if (buf.length < IN_HEADER_BYTES) throw dataCorrupt('CLIP_FUSE_BAD_REQUEST', `FUSE request of ${buf.length} bytes is shorter than its header`);
  const len = buf.readUInt32LE(0);
  if (len !== buf.length) throw dataCorrupt('CLIP_FUSE_BAD_REQUEST', `FUSE request says ${len} bytes, ${buf.length} were read`);
  const nodeid = buf.readBigUInt64LE(16);
  if (nodeid > BigInt(Number.MAX_SAFE_INTEGER)) throw dataCorrupt('CLIP_FUSE_BAD_REQUEST', `FUSE node id ${nodeid} out of range`);
  // total_extlen (8-byte units) trails the body; it is only non-zero for extensions never negotiated.
  const ext = buf.readUInt16LE(36) * 8;
  return {
    len,
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeid: Number(nodeid),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
    body: buf.subarray(IN_HEADER_BYTES, Math.max(IN_HEADER_BYTES, len - ext)),
  };
}

/** A NUL-terminated name at the start of `body` (LOOKUP, GETXATTR after its fixed part). */
export function cString(body: Buffer, at = 0): string {
  const end = body.indexOf(0, at);
  if (end < 0) throw dataCorrupt('CLIP_FUSE_BAD_REQUEST', 'FUSE name is not NUL-terminated');
  return body.toString('utf8', at, end);
}

/** Reads a fixed-size field set, refusing a body too short for it. */
export function need(body: Buffer, bytes: number, what: string): Buffer {
  if (body.length < bytes) throw dataCorrupt('CLIP_FUSE_BAD_REQUEST', `FUSE ${what} body of ${body.length} bytes, need ${bytes}`);
  return body;
}

/** A reply buffer with its header filled: `payload` bytes follow the header. */
export function reply(unique: bigint, payload: number): Buffer {
  const out = Buffer.allocUnsafe(OUT_HEADER_BYTES + payload);
  writeHeader(out, unique);
  return out;
}

/** Fill a success reply's header for the whole of `out`. */
export function writeHeader(out: Buffer, unique: bigint): void {
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(0, 4);
  out.writeBigUInt64LE(unique, 8);
}

/** An error reply (`errno` negative, as fuse_out_header.error carries it). */
export function errorReply(unique: bigint, errno: number): Buffer {
  const out = Buffer.alloc(OUT_HEADER_BYTES);
  out.writeUInt32LE(OUT_HEADER_BYTES, 0);
  out.writeInt32LE(errno, 4);
  out.writeBigUInt64LE(unique, 8);
  return out;
}

/** Cache lifetime as fuse_entry_out/fuse_attr_out carry it. */
export interface Ttl {
  sec: number;
  nsec: number;
}

/** Milliseconds → whole seconds and nanoseconds. */
export function ttlOf(ms: number): Ttl {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1e6) };
}

/** Write `struct fuse_attr` at `at`. */
export function writeAttr(out: Buffer, at: number, st: FuseStat): void {
  out.writeBigUInt64LE(BigInt(st.ino), at);
  out.writeBigUInt64LE(BigInt(st.size), at + 8);
  out.writeBigUInt64LE(BigInt(st.blocks), at + 16);
  const secs = (ms: number): bigint => BigInt(Math.floor(ms / 1000));
  const nsecs = (ms: number): number => Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6);
  out.writeBigInt64LE(secs(st.atime), at + 24);
  out.writeBigInt64LE(secs(st.mtime), at + 32);
  out.writeBigInt64LE(secs(st.ctime), at + 40);
  out.writeUInt32LE(nsecs(st.atime), at + 48);
  out.writeUInt32LE(nsecs(st.mtime), at + 52);
  out.writeUInt32LE(nsecs(st.ctime), at + 56);
  out.writeUInt32LE(st.mode >>> 0, at + 60);
  out.writeUInt32LE(st.nlink >>> 0, at + 64);
  out.writeUInt32LE(st.uid >>> 0, at + 68);
  out.writeUInt32LE(st.gid >>> 0, at + 72);
  out.writeUInt32LE(st.rdev >>> 0, at + 76);
  out.writeUInt32LE(st.blksize >>> 0, at + 80);
  out.writeUInt32LE(0, at + 84);
}

/** `struct fuse_entry_out` (nodeid 0 = a cached negative lookup). */
export function writeEntryOut(out: Buffer, at: number, nodeid: number, st: FuseStat | undefined, entry: Ttl, attr: Ttl): void {
  out.writeBigUInt64LE(BigInt(nodeid), at);
  out.writeBigUInt64LE(0n, at + 8); // generation: node ids are never reused within a mount
  out.writeBigUInt64LE(BigInt(entry.sec), at + 16);
  out.writeBigUInt64LE(BigInt(attr.sec), at + 24);
  out.writeUInt32LE(entry.nsec, at + 32);
  out.writeUInt32LE(attr.nsec, at + 36);
  if (st) writeAttr(out, at + 40, st);
  else out.fill(0, at + 40, at + ENTRY_OUT_BYTES);
}

/** `struct fuse_attr_out`. */
export function writeAttrOut(out: Buffer, at: number, st: FuseStat, attr: Ttl): void {
  out.writeBigUInt64LE(BigInt(attr.sec), at);
  out.writeUInt32LE(attr.nsec, at + 8);
  out.writeUInt32LE(0, at + 12);
  writeAttr(out, at + 16, st);
}

/** Bytes one `struct fuse_dirent` of this name takes, padded to 8. */
export function direntBytes(name: string): number {
  return (DIRENT_NAME_OFFSET + Buffer.byteLength(name) + 7) & ~7;
}

/** Write one `struct fuse_dirent`; returns the bytes written (padded). `off` is the next entry's cookie. */
export function writeDirent(out: Buffer, at: number, ino: number, off: number, type: number, name: string): number {
  const len = out.write(name, at + DIRENT_NAME_OFFSET, 'utf8');
  out.writeBigUInt64LE(BigInt(ino), at);
  out.writeBigUInt64LE(BigInt(off), at + 8);
  out.writeUInt32LE(len, at + 16);
  out.writeUInt32LE(type, at + 20);
  const total = (DIRENT_NAME_OFFSET + len + 7) & ~7;
  out.fill(0, at + DIRENT_NAME_OFFSET + len, at + total);
  return total;
}

/** What INIT asked and what we answer. */
export interface InitIn {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

/** Decode fuse_init_in (the fields every 7.x kernel sends). */
export function decodeInit(body: Buffer): InitIn {
  need(body, 16, 'INIT');
  return { major: body.readUInt32LE(0), minor: body.readUInt32LE(4), maxReadahead: body.readUInt32LE(8), flags: body.readUInt32LE(12) };
}

/** The negotiated parameters of one connection (carried across a hand-over). */
export interface Negotiated {
  major: number;
  minor: number;
  flags: number;
  maxReadahead: number;
  maxWrite: number;
  maxPages: number;
}

/** Our answer to INIT: protocol 7.min(kernel, ours), the flags both sides have. */
export function negotiate(init: InitIn, want: { maxReadahead: number; maxPages: number }): Negotiated {
  const minor = init.major > KERNEL_MAJOR ? OUR_MINOR : Math.min(init.minor, OUR_MINOR);
  const offered = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.PARALLEL_DIROPS | INIT.MAX_PAGES | INIT.CACHE_SYMLINKS;
  const flags = init.flags & offered;
  const maxPages = (flags & INIT.MAX_PAGES) !== 0 ? want.maxPages : 32;
  return {
    major: KERNEL_MAJOR,
    minor,
    flags,
    maxReadahead: Math.min(init.maxReadahead, want.maxReadahead),
    // A read-only file system gets no writes; the kernel sizes the read buffer it demands by this.
    maxWrite: MAX_WRITE_BYTES,
    maxPages,
  };
}

/** Encode fuse_init_out. */
export function initReply(unique: bigint, n: Negotiated): Buffer {
  const out = reply(unique, INIT_OUT_BYTES);
  const at = OUT_HEADER_BYTES;
  out.fill(0, at);
  out.writeUInt32LE(n.major, at);
  out.writeUInt32LE(n.minor, at + 4);
  out.writeUInt32LE(n.maxReadahead, at + 8);
  out.writeUInt32LE(n.flags, at + 12);
  out.writeUInt16LE(64, at + 16); // max_background: reads in flight the kernel may queue to us
  out.writeUInt16LE(48, at + 18); // congestion_threshold
  out.writeUInt32LE(n.maxWrite, at + 20);
  out.writeUInt32LE(1, at + 24); // time_gran: nanoseconds
  out.writeUInt16LE(n.maxPages, at + 28);
  return out;
}

/** `struct fuse_kstatfs` fields. */
export interface Kstatfs {
  blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number; frsize: number;
}

/** Encode fuse_statfs_out. */
export function statfsReply(unique: bigint, s: Kstatfs): Buffer {
  const out = reply(unique, STATFS_OUT_BYTES);
  const at = OUT_HEADER_BYTES;
  out.fill(0, at);
  out.writeBigUInt64LE(BigInt(s.blocks), at);
  out.writeBigUInt64LE(BigInt(s.bfree), at + 8);
  out.writeBigUInt64LE(BigInt(s.bavail), at + 16);
  out.writeBigUInt64LE(BigInt(s.files), at + 24);
  out.writeBigUInt64LE(BigInt(s.ffree), at + 32);
  out.writeUInt32LE(s.bsize, at + 40);
  out.writeUInt32LE(s.namelen, at + 44);
  out.writeUInt32LE(s.frsize, at + 48);
  return out;
}
