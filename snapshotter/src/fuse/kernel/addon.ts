/**
 * Loader for the `clip_fusedev` N-API addon (snapshotter/native/fusedev.c): mount(2), umount2(2),
 * a uv_poll reader per /dev/fuse descriptor and SOCK_SEQPACKET descriptor passing. Only the
 * kernel FUSE driver needs it; `[fuse_server] driver = "libfuse"` runs without it.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unavailable } from '../../errors/index.js';

/** A reader handle (opaque). */
export type ReaderHandle = { readonly __reader: unique symbol };

/** The addon's functions. Failures throw an Error whose `code` is the errno name. */
export interface FusedevNative {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount(target: string, flags: number): void;
  /** Calls `onRequest` with each request read, or with (null, errno) once the connection ended. */
  startReader(fd: number, bufferSize: number, onRequest: (req: Buffer | null, errno: number) => void): ReaderHandle;
  stopReader(handle: ReaderHandle): void;
  seqListen(path: string): number;
  seqAccept(fd: number, timeoutMs: number): number;
  seqConnect(path: string): number;
  seqSend(fd: number, data: Buffer, fds: number[], timeoutMs: number): void;
  seqRecv(fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; fds: number[] } | null;
}

const ADDON = join('snapshotter', 'native', 'build', 'Release', 'clip_fusedev.node');
let cached: FusedevNative | null | undefined;

/** Candidate paths: `$CLIP_FUSEDEV_ADDON`, then the source tree's build dir seen from src/ or build/. */
function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const env = process.env['CLIP_FUSEDEV_ADDON'];
  return [...(env ? [env] : []), resolve(here, '..', '..', '..', '..', ADDON), resolve(here, '..', '..', '..', '..', '..', ADDON)];
}

/** The addon, or undefined when it has not been built. */
export function tryFusedev(): FusedevNative | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const require = createRequire(import.meta.url);
  cached = null;
  for (const path of candidates()) {
    if (!existsSync(path)) continue;
    cached = require(path) as FusedevNative;
    break;
  }
  return cached ?? undefined;
}

/** The addon; throws CLIP_FUSE_DRIVER_UNAVAILABLE when it has not been built. */
export function fusedev(): FusedevNative {
  const n = tryFusedev();
  if (!n) throw unavailable('CLIP_FUSE_DRIVER_UNAVAILABLE', `the kernel FUSE driver needs the clip_fusedev addon (make deps builds ${ADDON})`);
  return n;
}
