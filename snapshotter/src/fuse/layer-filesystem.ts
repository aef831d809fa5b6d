/**
 * One read-only FUSE mount of one layer. States: unmounted → mounting → mounted → unmounted; a
 * LayerFilesystem can be mounted again after unmount. The layer is immutable, so the kernel may
 * cache entries, attributes, negative lookups and file pages for as long as it likes.
 *
 * Two drivers: `libfuse` (fuse-native, libfuse 2's high-level API) and `kernel` (our own
 * implementation of the wire protocol on /dev/fuse, `kernel/`), whose connections can be handed
 * to another process (`handOver`, `adopt`).
 */
import { resolve } from 'node:path';
import { failedPrecondition, messageOf, unavailable } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import type { LayerReader } from '../storage/layer-reader.js';
import type { ReadActivitySink } from '../storage/read-activity.js';
import { isMountPoint, lazyDetach } from './detach.js';
import type { IndexView } from './index-view.js';
import { LayerOps, type IdTranslation } from './layer-ops.js';
import { clipFuseClass, releaseNative, type ClipFuse, type NativeOptions } from './native-fuse.js';
import { KernelMount } from './kernel/kernel-mount.js';
import { LayerDispatcher } from './kernel/layer-dispatcher.js';
import type { Negotiated } from './kernel/wire.js';

/** Which FUSE implementation serves a mount. */
export type FuseDriver = 'libfuse' | 'kernel';

/** A kernel-driver mount as it leaves one process for another: its connection and parameters. */
export interface HandedMount {
  fd: number;
  mountpoint: string;
  negotiated: Negotiated;
}

/** Options of `LayerFilesystem`. */
export interface LayerFilesystemOptions {
  view: IndexView;
  reader: LayerReader;
  logger?: Logger | undefined;
  /** Let users other than the daemon's read the mount (containers run as any uid). Default true. */
  allowOther?: boolean | undefined;
  /** How long the kernel may cache lookups and attributes. Default one day. */
  metadataTtlMs?: number | undefined;
  /** Bound on waiting for the kernel's INIT, and on a clean unmount. Default 10 s each. */
  mountTimeoutMs?: number | undefined;
  unmountTimeoutMs?: number | undefined;
  /** fuse's own request trace on stderr. */
  debug?: boolean | undefined;
  /** Owner translation for a user-namespaced container's view; absent = owners as in the layer. */
  ids?: IdTranslation | undefined;
  /** Default `libfuse`. */
  driver?: FuseDriver | undefined;
  /** Hears of the mount's requests: the process's background work yields to them (`storage/read-activity.ts`). */
  activity?: ReadActivitySink | undefined;
}

const DAY_MS = 86_400_000;
const DEFAULT_TIMEOUT_MS = 10_000;
const READAHEAD_BYTES = 1 << 20;

/** A layer's index and bytes served as a read-only filesystem. */
export class LayerFilesystem {
  readonly #opts: LayerFilesystemOptions;
  readonly #log: Logger;
  readonly #layer: string;
  #fuse: ClipFuse | undefined;
  #kernel: KernelMount | undefined;
  #ops: LayerOps | undefined;
  #mountpoint: string | undefined;

  constructor(opts: LayerFilesystemOptions) {
    this.#opts = opts;
    this.#layer = opts.view.meta.diffId;
    this.#log = (opts.logger ?? silentLogger()).child({ layer: this.#layer });
  }

  /** Where the layer is mounted, if it is. */
  get mountpoint(): string | undefined {
    return this.#mountpoint;
  }

  /** Open file and directory handles right now. */
  get openHandles(): number {
    return this.#ops?.openHandles ?? 0;
  }

  /** The FUSE implementation serving this mount. */
  get driver(): FuseDriver {
    return this.#opts.driver ?? 'libfuse';
  }

  /** Mount at an existing empty directory; resolves once the kernel has initialised the mount. */
  async mount(mountpoint: string): Promise<void> {
    if (this.#fuse !== undefined || this.#kernel !== undefined) {
      throw failedPrecondition('CLIP_FUSE_MOUNTED', `layer ${this.#layer} is already mounted at ${this.#mountpoint}`);
    }
    const mnt = resolve(mountpoint);
    const ops = new LayerOps({ view: this.#opts.view, reader: this.#opts.reader, layer: this.#layer, logger: this.#log, ids: this.#opts.ids, activity: this.#opts.activity });
    if (this.driver === 'kernel') return this.#mountKernel(mnt, ops);
    const fuse = new (clipFuseClass())(mnt, ops.ops(), this.#nativeOptions(), this.#extraOptions());
    this.#fuse = fuse;
    this.#ops = ops;
    this.#mountpoint = mnt;
    const started = Date.now();
    try {
      await withTimeout((cb) => fuse.mount(cb), this.#opts.mountTimeoutMs ?? DEFAULT_TIMEOUT_MS, 'mount');
    } catch (err) {
      await this.#abandon(fuse, mnt, err);
      throw unavailable('CLIP_FUSE_MOUNT_FAILED', `mount layer ${this.#layer} at ${mnt}: ${messageOf(err)}`, err);
    }
    this.#log.info({ mountpoint: mnt, duration_ms: Date.now() - started }, 'fuse: layer mounted');
  }

  async #mountKernel(mnt: string, ops: LayerOps): Promise<void> {
    const started = Date.now();
    this.#ops = ops;
    this.#mountpoint = mnt;
    try {
      this.#kernel = await KernelMount.mount({
        mountpoint: mnt, fsname: `clip:${shortDigest(this.#layer)}`, handler: this.#dispatcher(ops).handle, log: this.#log,
        timeoutMs: this.#opts.mountTimeoutMs ?? DEFAULT_TIMEOUT_MS, maxReadahead: READAHEAD_BYTES, activity: this.#opts.activity,
      });
    } catch (err) {
      ops.close();
      this.#ops = undefined;
      this.#mountpoint = undefined;
      throw unavailable('CLIP_FUSE_MOUNT_FAILED', `mount layer ${this.#layer} at ${mnt}: ${messageOf(err)}`, err);
    }
    this.#log.info({ mountpoint: mnt, driver: 'kernel', duration_ms: Date.now() - started }, 'fuse: layer mounted');
  }

  #dispatcher(ops: LayerOps): LayerDispatcher {
    return new LayerDispatcher(ops, { ttlMs: this.#opts.metadataTtlMs ?? DAY_MS });
  }

  /**
   * Kernel driver: stop reading the connection and wait for the replies in flight, then give up
   * the mount without unmounting it: the caller passes `fd` to the process that adopts it, then
   * calls `release` (which closes this process's copy of the descriptor).
   */
  async handOver(): Promise<HandedMount> {
    const k = this.#kernel;
    const mnt = this.#mountpoint;
    if (k === undefined || mnt === undefined) throw failedPrecondition('CLIP_FUSE_MOUNTED', `layer ${this.#layer} has no kernel-driver mount to hand over`);
    await k.session.pause();
    const negotiated = k.session.negotiated;
    if (negotiated === undefined) throw failedPrecondition('CLIP_FUSE_MOUNTED', `layer ${this.#layer} at ${mnt} was never initialised`);
    return { fd: k.session.fd, mountpoint: mnt, negotiated };
  }

  /** After a `handOver` that failed: serve the connection again. */
  resume(): void {
    this.#kernel?.session.start();
  }

  /** After `handOver`: forget the mount (left mounted, served by another process now). */
  release(): void {
    this.#kernel?.session.close();
    this.#ops?.close();
    this.#kernel = undefined;
    this.#ops = undefined;
    this.#mountpoint = undefined;
  }

  /** Kernel driver: serve a mount handed over by another process (see `handOver`). */
  adopt(h: HandedMount): void {
    if (this.#fuse !== undefined || this.#kernel !== undefined) {
      throw failedPrecondition('CLIP_FUSE_MOUNTED', `layer ${this.#layer} is already mounted at ${this.#mountpoint}`);
    }
    const ops = new LayerOps({ view: this.#opts.view, reader: this.#opts.reader, layer: this.#layer, logger: this.#log, ids: this.#opts.ids });
    this.#ops = ops;
    this.#mountpoint = h.mountpoint;
    this.#kernel = KernelMount.adopt({ fd: h.fd, mountpoint: h.mountpoint, negotiated: h.negotiated, handler: this.#dispatcher(ops).handle, log: this.#log, activity: this.#opts.activity });
    this.#log.info({ mountpoint: h.mountpoint, driver: 'kernel' }, 'fuse: layer mount adopted');
  }

  /** Detach the mount; falls back to a lazy detach when busy, so it returns even with files open. */
  async unmount(): Promise<void> {
    if (this.#kernel !== undefined) return this.#unmountKernel(this.#kernel);
    const fuse = this.#fuse;
    const mnt = this.#mountpoint;
    if (fuse === undefined || mnt === undefined) return;
    const open = this.openHandles;
    try {
      await withTimeout((cb) => fuse.unmount(cb), this.#opts.unmountTimeoutMs ?? DEFAULT_TIMEOUT_MS, 'unmount');
    } catch (err) {
      await this.#abandon(fuse, mnt, err);
    }
    if (await isMountPoint(mnt)) await lazyDetach(mnt);
    this.#ops?.close();
    this.#fuse = undefined;
    this.#ops = undefined;
    this.#mountpoint = undefined;
    this.#log.info({ mountpoint: mnt, open_handles: open }, 'fuse: layer unmounted');
  }

  async #unmountKernel(k: KernelMount): Promise<void> {
    const open = this.openHandles;
    k.unmount(this.#log);
    if (await isMountPoint(k.mountpoint)) await lazyDetach(k.mountpoint);
    this.#ops?.close();
    this.#kernel = undefined;
    this.#ops = undefined;
    this.#mountpoint = undefined;
    this.#log.info({ mountpoint: k.mountpoint, open_handles: open, driver: 'kernel' }, 'fuse: layer unmounted');
  }

  // Whatever state fuse-native is in, leave no mount and no event-loop reference behind.
  async #abandon(fuse: ClipFuse, mnt: string, err: unknown): Promise<void> {
    this.#log.warn({ mountpoint: mnt, err: messageOf(err) }, 'fuse: detaching lazily');
    await lazyDetach(mnt);
    try {
      releaseNative(fuse);
    } catch (releaseErr) {
      this.#log.debug({ err: messageOf(releaseErr) }, 'fuse: native release failed');
    }
    this.#ops?.close();
    this.#fuse = undefined;
    this.#ops = undefined;
    this.#mountpoint = undefined;
  }

  #nativeOptions(): NativeOptions {
    const ttlSec = (this.#opts.metadataTtlMs ?? DAY_MS) / 1000;
    return {
      fsname: `clip:${shortDigest(this.#layer)}`,
      subtype: 'clip',
      allowOther: this.#opts.allowOther ?? true,
      // The kernel checks mode bits itself; without it any user could read a root-only file.
      defaultPermissions: true,
      // Pages of an immutable file stay valid across opens.
      kernelCache: true,
      entryTimeout: ttlSec,
      attrTimeout: ttlSec,
      // Reads wait on the LayerReader, which bounds its own time; fuse-native's timer would answer ETIMEDOUT.
      timeout: false,
      debug: this.#opts.debug ?? false,
    };
  }

  #extraOptions(): string[] {
    const ttlSec = (this.#opts.metadataTtlMs ?? DAY_MS) / 1000;
    // libfuse mounts nosuid,nodev unless told otherwise; a layer's setuid binaries and device nodes
    // must work when the mount is bind-mounted as a container's root (allowed only for root).
    const privileged = process.getuid?.() === 0 ? ['suid', 'dev'] : [];
    return ['ro', 'use_ino', ...privileged, `negative_timeout=${ttlSec}`, `max_readahead=${READAHEAD_BYTES}`];
  }
}

/** `sha256:0123456789abcdef…` → `0123456789ab`; anything else passes through, minus commas. */
function shortDigest(digest: string): string {
  const hex = digest.includes(':') ? digest.slice(digest.indexOf(':') + 1) : digest;
  return hex.slice(0, 12).replace(/[^A-Za-z0-9._-]/g, '_');
}

function withTimeout(start: (cb: (err: Error | null) => void) => void, timeoutMs: number, what: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`fuse ${what} timed out after ${timeoutMs} ms`)), timeoutMs);
    start((err) => {
      clearTimeout(timer);
      if (err) reject(err);
      else resolvePromise();
    });
  });
}
