/**
 * Loader for the `clip_fusedev` N-API addon (snapshotter/native/fusedev.c): mount(2), umount2(2),
 * a uv_poll reader per /dev/fuse descriptor, READ replies spliced from the page cache,
 * SOCK_SEQPACKET descriptor passing, and systemd's notification datagram (sdNotify). Only the
 * kernel FUSE driver and a FUSE server under systemd's `Type=notify` need it;
 * `[fuse_server] driver = "libfuse"` runs without it.
 */
import { unavailable } from '../../errors/index.js';
import { loadNativeAddon } from '../../util/native-addon.js';

/** A reader handle (opaque). */
export type ReaderHandle = { readonly __reader: unique symbol };

/** The addon's functions. Failures throw an Error whose `code` is the errno name. */
export interface FusedevNative {
  mount(source: string, target: string, fstype: string, flags: number, data: string): void;
  umount(target: string, flags: number): void;
  /** Calls `onRequest` with each request read, or with (null, errno) once the connection ended. */
  startReader(fd: number, bufferSize: number, onRequest: (req: Buffer | null, errno: number) => void): ReaderHandle;
  stopReader(handle: ReaderHandle): void;
  /**
   * Write a READ reply (16-byte `header`, then `length` bytes of `fileFd` at `position`) by
   * splice(2); false, with nothing written, unless the range is all in the page cache.
   */
  spliceReply(fuseFd: number, header: Buffer, fileFd: number, position: number, length: number): boolean;
  /** The largest payload `spliceReply` moves whatever its alignment (bytes); 0 = splicing unavailable. */
  spliceCapacity(): number;
  seqListen(path: string): number;
  seqAccept(fd: number, timeoutMs: number): number;
  seqConnect(path: string): number;
  seqSend(fd: number, data: Buffer, fds: number[], timeoutMs: number): void;
  seqRecv(fd: number, maxBytes: number, timeoutMs: number): { data: Buffer; fds: number[] } | null;
  /** One datagram to the unix socket `path` (`@name`: abstract namespace): systemd's sd_notify. */
  sdNotify(path: string, message: string): void;
}

let cached: FusedevNative | null | undefined;

/** The addon, or undefined when it has not been built. */
export function tryFusedev(): FusedevNative | undefined {
  // null: looked for and not built (asked once per process).
  if (cached === undefined) cached = loadNativeAddon<FusedevNative>('clip_fusedev', 'CLIP_FUSEDEV_ADDON', import.meta.url) ?? null;
  return cached ?? undefined;
}

/** The addon; throws CLIP_FUSE_DRIVER_UNAVAILABLE when it has not been built. */
export function fusedev(): FusedevNative {
  const n = tryFusedev();
  if (!n) throw unavailable('CLIP_FUSE_DRIVER_UNAVAILABLE', `the kernel FUSE driver needs the clip_fusedev addon (make deps builds snapshotter/native/build/Release/clip_fusedev.node)`);
  return n;
}
