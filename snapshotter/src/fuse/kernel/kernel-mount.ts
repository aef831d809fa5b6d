/**
 * A layer mounted through the kernel driver: /dev/fuse opened non-blocking, mount(2) of a
 * `fuse.clip` file system on it, a KernelSession serving it. A mount can also be adopted from
 * another process (hand-over): the descriptor and the connection's INIT parameters are all the
 * kernel's side needs; the layer's side is the same index.
 */
import { constants, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { messageOf, unavailable } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import type { ReadActivitySink } from '../../storage/read-activity.js';
import { mountDevice } from '../detach.js';
import { fusedev } from './addon.js';
import type { RequestHandler } from './layer-dispatcher.js';
import { KernelSession } from './session.js';
import type { Negotiated } from './wire.js';

const MS_RDONLY = 1;
const PAGE_BYTES = 4096;
/** The kernel's ceiling on max_pages (1 MiB requests). */
const KERNEL_MAX_PAGES = 256;
const MNT_DETACH = 2;

/** Options of a kernel mount. */
export interface KernelMountOptions {
  mountpoint: string;
  /** Shown as the mount's source in mountinfo (`clip:<digest prefix>`). */
  fsname: string;
  handler: RequestHandler;
  log: Logger;
  /** Bound on waiting for the kernel's INIT. */
  timeoutMs: number;
  /** Kernel readahead of the mount (bytes): sequential reads arrive as requests up to this size (≤ 1 MiB each). */
  maxReadahead: number;
  /** Hears of every request (background work yields to them). */
  activity?: ReadActivitySink | undefined;
}

/** A served kernel FUSE mount. */
export class KernelMount {
  readonly mountpoint: string;
  readonly session: KernelSession;

  private constructor(mountpoint: string, session: KernelSession) {
    this.mountpoint = mountpoint;
    this.session = session;
  }

  /** Mount at an existing directory; resolves once INIT was answered. */
  static async mount(o: KernelMountOptions): Promise<KernelMount> {
    const native = fusedev();
    let fd: number;
    try {
      fd = openSync('/dev/fuse', constants.O_RDWR | constants.O_NONBLOCK);
    } catch (err) {
      throw unavailable('CLIP_FUSE_DRIVER_UNAVAILABLE', `open /dev/fuse: ${messageOf(err)}`, err);
    }
    const maxPages = requestPages(native);
    const maxReadahead = Math.min(o.maxReadahead, maxPages * PAGE_BYTES);
    const session = new KernelSession({ fd, handler: o.handler, log: o.log, limits: { maxReadahead, maxPages }, activity: o.activity });
    const uid = process.getuid?.() ?? 0;
    const gid = process.getgid?.() ?? 0;
    const data = `fd=${fd},rootmode=40000,user_id=${uid},group_id=${gid},allow_other,default_permissions`;
    try {
      native.mount(o.fsname, o.mountpoint, 'fuse.clip', MS_RDONLY, data);
    } catch (err) {
      session.close();
      throw err;
    }
    const m = new KernelMount(o.mountpoint, session);
    session.start();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        session.initialized(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no FUSE INIT within ${o.timeoutMs} ms`)), o.timeoutMs);
        }),
      ]);
    } catch (err) {
      m.detach(o.log);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    await widenReadahead(o.mountpoint, maxReadahead, o.log);
    return m;
  }

  /** Serve a connection another process mounted and initialised (hand-over). */
  static adopt(o: { fd: number; mountpoint: string; negotiated: Negotiated; handler: RequestHandler; log: Logger; activity?: ReadActivitySink | undefined }): KernelMount {
    const session = new KernelSession({ fd: o.fd, handler: o.handler, log: o.log, negotiated: o.negotiated, activity: o.activity });
    session.start();
    return new KernelMount(o.mountpoint, session);
  }

  /** Unmount (lazily when busy) and close the connection. */
  unmount(log: Logger): void {
    const native = fusedev();
    try {
      native.umount(this.mountpoint, 0);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EBUSY') this.detach(log);
      else if (code !== 'EINVAL' && code !== 'ENOENT') log.warn({ mountpoint: this.mountpoint, err: messageOf(err) }, 'fuse: umount failed');
    }
    this.session.close();
  }

  /** Lazy detach, never waiting for open files; then close the connection. */
  detach(log: Logger): void {
    try {
      fusedev().umount(this.mountpoint, MNT_DETACH);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') log.warn({ mountpoint: this.mountpoint, err: messageOf(err) }, 'fuse: lazy detach failed');
    }
    this.session.close();
  }
}

/**
 * The kernel caps a FUSE mount's readahead at its backing device's default (128 KiB) whatever INIT
 * answers, so a sequential reader got 128 KiB requests however large max_pages is. The device's
 * sysfs knob raises it; files opened afterwards read ahead that far in requests of up to max_pages.
 * Best effort: without it reads are only smaller.
 */
async function widenReadahead(mountpoint: string, bytes: number, log: Logger): Promise<void> {
  try {
    const dev = await mountDevice(mountpoint);
    if (dev === undefined) throw new Error('not in mountinfo');
    await writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, `${Math.ceil(bytes / 1024)}\n`);
  } catch (err) {
    log.debug({ mountpoint, err: messageOf(err) }, 'fuse: could not raise the readahead of the mount');
  }
}

/**
 * max_pages to negotiate: the kernel's ceiling, lowered to what one spliced reply can carry (a pipe
 * of 1 MiB without CAP_SYS_RESOURCE holds 1016 KiB at any alignment), so a sequential reader's
 * requests all take the splice path instead of every one being a page too large for it.
 */
export function requestPages(native: { spliceCapacity?: () => number }): number {
  const fits = Math.floor((native.spliceCapacity?.() ?? 0) / PAGE_BYTES);
  return fits >= KERNEL_MAX_PAGES / 2 ? Math.min(KERNEL_MAX_PAGES, fits) : KERNEL_MAX_PAGES;
}
