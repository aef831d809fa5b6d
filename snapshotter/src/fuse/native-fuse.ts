/**
 * Typed access to fuse-native, plus the two things it lacks: mount options it does not pass
 * through (`ro`, `use_ino`, …) and xattr replies that respect the caller's buffer size (fuse-native
 * copies whatever it gets, so an undersized buffer must be answered with ERANGE here).
 */
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { ERRNO } from './errno.js';
import type { FuseStat } from './entry-stat.js';

type Done = (result: number) => void;

/** File system operations in fuse-native's callback style (results are 0/positive or -errno). */
export interface FuseOps {
  init(cb: Done): void;
  getattr(path: string, cb: (err: number, stat?: FuseStat) => void): void;
  readdir(path: string, cb: (err: number, names?: string[], stats?: FuseStat[]) => void): void;
  open(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  opendir(path: string, flags: number, cb: (err: number, fd?: number) => void): void;
  read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Done): void;
  readlink(path: string, cb: (err: number, target?: string) => void): void;
  getxattr(path: string, name: string, position: number, cb: (err: number, value?: Buffer) => void): void;
  listxattr(path: string, cb: (err: number, names?: string[]) => void): void;
  statfs(path: string, cb: (err: number, st?: FuseStatfs) => void): void;
  release(path: string, fd: number, cb: Done): void;
  releasedir(path: string, fd: number, cb: Done): void;
  access(path: string, mode: number, cb: Done): void;
  [writeOp: string]: ((...args: never[]) => void) | undefined;
}

/** `struct statvfs` fields as fuse-native copies them. */
export interface FuseStatfs {
  bsize: number; frsize: number; blocks: number; bfree: number; bavail: number;
  files: number; ffree: number; favail: number; fsid: number; flag: number; namemax: number;
}

/** The fuse-native constructor options this project uses. */
export interface NativeOptions {
  fsname: string;
  subtype: string;
  allowOther: boolean;
  defaultPermissions: boolean;
  kernelCache: boolean;
  entryTimeout: number;
  attrTimeout: number;
  timeout: false;
  debug: boolean;
}

type Signal = (result: number, buffer?: ArrayBuffer) => void;

interface NativeFuseInstance {
  readonly mnt: string;
  readonly ops: FuseOps;
  readonly _thread: Buffer | null;
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  _fuseOptions(): string;
  _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void;
  _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void;
}
type NativeFuseClass = new (mnt: string, ops: FuseOps, opts: NativeOptions) => NativeFuseInstance;

const require = createRequire(import.meta.url);

/** A fuse-native mount (constructing it does not mount). */
export type ClipFuse = NativeFuseInstance;
type ClipFuseClass = new (mnt: string, ops: FuseOps, opts: NativeOptions, extraOptions: readonly string[]) => ClipFuse;
let clipFuse: ClipFuseClass | undefined;

/**
 * fuse-native with extra `-o` options and size-checked xattr replies. fuse-native (≈ 10 MB of
 * resident memory with libfuse) is loaded on the first call: a FUSE server on the kernel driver
 * never loads it.
 */
export function clipFuseClass(): ClipFuseClass {
  if (clipFuse !== undefined) return clipFuse;
  const NativeFuse = require('fuse-native') as NativeFuseClass;
  clipFuse = class ClipFuse extends NativeFuse {
    readonly #extraOptions: readonly string[];

    constructor(mnt: string, ops: FuseOps, opts: NativeOptions, extraOptions: readonly string[]) {
      super(mnt, ops, opts);
      this.#extraOptions = extraOptions;
    }

    override _fuseOptions(): string {
      const base = super._fuseOptions();
      if (this.#extraOptions.length === 0) return base;
      const extra = this.#extraOptions.join(',');
      return base === '' ? `-o${extra}` : `${base},${extra}`;
    }

    override _op_getxattr(signal: Signal, path: string, name: string, valueBuf: Buffer, position: number): void {
      this.ops.getxattr(path, name, position, (err, value) => {
        if (err !== 0) return signal(err, valueBuf.buffer as ArrayBuffer);
        if (value === undefined) return signal(ERRNO.ENODATA, valueBuf.buffer as ArrayBuffer);
        // A zero-sized buffer asks for the size only.
        if (valueBuf.length === 0) return signal(value.length, valueBuf.buffer as ArrayBuffer);
        if (value.length > valueBuf.length) return signal(ERRNO.ERANGE, valueBuf.buffer as ArrayBuffer);
        value.copy(valueBuf);
        return signal(value.length, valueBuf.buffer as ArrayBuffer);
      });
    }

    override _op_listxattr(signal: Signal, path: string, listBuf: Buffer): void {
      this.ops.listxattr(path, (err, names) => {
        if (err !== 0 || names === undefined) return signal(err, listBuf.buffer as ArrayBuffer);
        let size = 0;
        for (const n of names) size += Buffer.byteLength(n) + 1;
        if (listBuf.length === 0) return signal(size, listBuf.buffer as ArrayBuffer);
        if (size > listBuf.length) return signal(ERRNO.ERANGE, listBuf.buffer as ArrayBuffer);
        let at = 0;
        for (const n of names) {
          at += listBuf.write(n, at);
          listBuf[at++] = 0;
        }
        return signal(at, listBuf.buffer as ArrayBuffer);
      });
    }
  };
  return clipFuse;
}

interface NativeBinding {
  fuse_native_unmount(mnt: string, thread: Buffer): void;
}

/**
 * Release fuse-native's hold on the event loop after the mount was detached by other means
 * (its own unmount does this only when `fusermount -uz` succeeded).
 */
export function releaseNative(fuse: ClipFuse): void {
  if (fuse._thread === null) return;
  const loadBinding = require('node-gyp-build') as (dir: string) => NativeBinding;
  const binding = loadBinding(dirname(require.resolve('fuse-native/package.json')));
  binding.fuse_native_unmount(fuse.mnt, fuse._thread);
}
