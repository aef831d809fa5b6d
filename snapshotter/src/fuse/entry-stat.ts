/**
 * Index entries as `struct stat`. Whiteouts become character devices 0/0 under their plain name,
 * which is what overlayfs looks for in a lower directory; hardlinks report their target's type,
 * inode and link count.
 */
import type { Entry, LinkedType } from '../clip/types.js';

/** The stat fields fuse-native copies into `struct stat` (times in milliseconds). */
export interface FuseStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  nlink: number;
  ino: number;
  rdev: number;
  blksize: number;
  blocks: number;
  atime: number;
  mtime: number;
  ctime: number;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export const BLOCK_BYTES = 4096;
/** Directories have no size in a tar; report one block like ext4 does. */
const DIR_SIZE = BLOCK_BYTES;

/** glibc's `makedev` for the 32-bit dev_t fuse-native can carry (major < 4096, minor < 2^20). */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & 0xfff00) << 12)) >>> 0;
}

/** The `struct stat` of an entry. */
export function statOf(e: Entry): FuseStat {
  const { typeBits, size, rdev } = shape(e);
  const mtime = e.mtimeSec * 1000 + Math.floor(e.mtimeNsec / 1_000_000);
  return {
    mode: typeBits | (e.mode & 0o7777),
    uid: e.uid,
    gid: e.gid,
    size,
    dev: 0,
    nlink: Math.max(1, e.nlink),
    ino: e.inode,
    rdev,
    blksize: BLOCK_BYTES,
    // 512-byte units, rounded to whole filesystem blocks as a local filesystem would allocate.
    blocks: Math.ceil(size / BLOCK_BYTES) * (BLOCK_BYTES / 512),
    atime: mtime,
    mtime,
    ctime: mtime,
  };
}

function shape(e: Entry): { typeBits: number; size: number; rdev: number } {
  switch (e.type) {
    case 'file':
      return { typeBits: S_IFREG, size: e.size, rdev: 0 };
    case 'dir':
      return { typeBits: S_IFDIR, size: DIR_SIZE, rdev: 0 };
    case 'symlink':
      return { typeBits: S_IFLNK, size: Buffer.byteLength(e.target), rdev: 0 };
    case 'char':
      return { typeBits: S_IFCHR, size: 0, rdev: makedev(e.devMajor, e.devMinor) };
    case 'block':
      return { typeBits: S_IFBLK, size: 0, rdev: makedev(e.devMajor, e.devMinor) };
    case 'fifo':
      return { typeBits: S_IFIFO, size: 0, rdev: 0 };
    case 'whiteout':
      return { typeBits: S_IFCHR, size: 0, rdev: 0 };
    case 'hardlink':
      return hardlinkShape(e.linkedType, e.size, makedev(e.devMajor, e.devMinor));
  }
}

function hardlinkShape(linked: LinkedType, size: number, rdev: number): { typeBits: number; size: number; rdev: number } {
  switch (linked) {
    case 'file':
      return { typeBits: S_IFREG, size, rdev: 0 };
    case 'char':
      return { typeBits: S_IFCHR, size: 0, rdev };
    case 'block':
      return { typeBits: S_IFBLK, size: 0, rdev };
    case 'fifo':
      return { typeBits: S_IFIFO, size: 0, rdev: 0 };
  }
}

/** Byte range of an entry's data in the layer tar, or undefined when it has none to read. */
export function dataRange(e: Entry): { dataOffset: number; size: number } | undefined {
  if (e.type === 'file') return e;
  if (e.type === 'hardlink' && e.linkedType === 'file') return e;
  return undefined;
}
