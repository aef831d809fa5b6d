/**
 * Shapes shared by the clip index builder, encoder and reader. Entries are a discriminated union on
 * `type`; whiteouts (`.wh.NAME`) are stored under NAME with type `whiteout`, opaque markers
 * (`.wh..wh..opq`) become the `opaque` flag of their directory, which is how the FUSE layer must
 * present them to overlayfs anyway.
 */
import type { Transform } from 'node:stream';
import type { Compression } from '../compression/index.js';

export type { Compression };

/** Entry kinds as stored in the index. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'whiteout';

/** What a hardlink points at (hardlinks to symlinks are stored as symlinks sharing the inode). */
export type LinkedType = 'file' | 'char' | 'block' | 'fifo';

/** One extended attribute; values are binary-safe. */
export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

/** Fields every entry carries. `path` is relative with no leading slash; '' is the root. */
export interface EntryBase {
  readonly index: number;
  readonly path: string;
  readonly name: string;
  /** Permission bits including setuid/setgid/sticky (07777). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly uname: string;
  readonly gname: string;
  readonly mtimeSec: number;
  readonly mtimeNsec: number;
  /** Stable inode number; hardlinks share their target's. The root is 1. */
  readonly inode: number;
  readonly nlink: number;
  readonly xattrCount: number;
}

export interface FileEntry extends EntryBase {
  readonly type: 'file';
  readonly size: number;
  /** Offset of the file's bytes in the uncompressed layer tar. */
  readonly dataOffset: number;
}
export interface DirEntry extends EntryBase {
  readonly type: 'dir';
  readonly opaque: boolean;
  readonly childCount: number;
}
export interface SymlinkEntry extends EntryBase {
  readonly type: 'symlink';
  readonly target: string;
}
export interface HardlinkEntry extends EntryBase {
  readonly type: 'hardlink';
  /** Path of the entry this links to, as written in the tar (normalized). */
  readonly target: string;
  readonly linkedType: LinkedType;
  readonly size: number;
  readonly dataOffset: number;
  readonly devMajor: number;
  readonly devMinor: number;
}
export interface DeviceEntry extends EntryBase {
  readonly type: 'char' | 'block';
  readonly devMajor: number;
  readonly devMinor: number;
}
export interface FifoEntry extends EntryBase {
  readonly type: 'fifo';
}
export interface WhiteoutEntry extends EntryBase {
  readonly type: 'whiteout';
}

/** An index entry as the reader returns it. */
export type Entry = FileEntry | DirEntry | SymlinkEntry | HardlinkEntry | DeviceEntry | FifoEntry | WhiteoutEntry;

/** Layer-level facts stored in the index. */
export interface LayerMeta {
  /** `sha256:<hex>` of the uncompressed tar. */
  readonly diffId: string;
  /** Digest of the layer blob as fetched (equals diffId when uncompressed). */
  readonly compressedDigest: string;
  readonly compression: Compression;
  readonly uncompressedSize: number;
  readonly entryCount: number;
}

/**
 * One entry as the builder produces it, before encoding. Entries in `ClipIndex.entries` are sorted
 * by (parent path, name) in UTF-8 byte order; the root comes first.
 */
export interface BuiltEntry {
  path: string;
  type: EntryType;
  linkedType: LinkedType | undefined;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtimeSec: number;
  mtimeNsec: number;
  size: number;
  dataOffset: number;
  devMajor: number;
  devMinor: number;
  /** Symlink text or hardlink target path; '' otherwise. */
  link: string;
  xattrs: Xattr[];
  opaque: boolean;
  /** Identity shared by hardlinked entries; mapped to inode numbers when encoding. */
  inodeGroup: number;
}

/** A built index, ready for `encodeIndex`. */
export interface ClipIndex {
  readonly meta: LayerMeta;
  readonly entries: readonly BuiltEntry[];
  /** Encoded gzip checkpoint table (zran/), written as the `gzipCheckpoints` section when present. */
  readonly gzipCheckpoints?: Buffer | undefined;
  /** Encoded zstd frame table (zran/), written as the `zstdFrames` section when present. */
  readonly zstdFrames?: Buffer | undefined;
}

/**
 * Sees the raw (compressed) layer bytes while `buildIndex` streams them; lets zran/ build its
 * random-access tables in the same pass without clip/ depending on it.
 */
export interface CompressedObserver {
  /** Called once, with the compression sniffed from the magic bytes, before any `push`. */
  start(compression: Compression): void;
  push(chunk: Buffer): void;
  /**
   * Optionally decompress the layer for `buildIndex` (compressed bytes in, the uncompressed
   * stream out), so an observer that needs the uncompressed bytes does not decode them twice.
   */
  decompressor?(compression: Compression): Transform | undefined;
  /** The section body to store — `gzipCheckpoints` for gzip, `zstdFrames` for zstd — or undefined. */
  finish(): Buffer | undefined;
}
