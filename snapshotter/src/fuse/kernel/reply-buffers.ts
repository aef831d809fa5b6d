/**
 * Reply buffers for READ, reused: a fresh 1 MiB Buffer per request costs an mmap, a page fault
 * per 4 KiB and an munmap — more than the copy the reply carries. A reply is written to /dev/fuse
 * synchronously, so its buffer is free again as soon as the write returns (`recycle`).
 */
import { OUT_HEADER_BYTES } from './wire.js';

/** The largest READ reply a pooled buffer holds (max_pages 256 × 4 KiB) plus its header. */
export const POOLED_REPLY_BYTES = OUT_HEADER_BYTES + (1 << 20);
/** Free buffers kept between bursts (the rest are left to the GC): 2 MiB at most, idle. */
const KEEP = 2;

const free: ArrayBuffer[] = [];
const pooled = new WeakSet<ArrayBuffer>();

/** A buffer of `bytes` (≤ POOLED_REPLY_BYTES from the pool, else a new one); contents undefined. */
export function takeReplyBuffer(bytes: number): Buffer {
  if (bytes > POOLED_REPLY_BYTES) return Buffer.allocUnsafeSlow(bytes);
  let ab = free.pop();
  if (ab === undefined) {
    ab = new ArrayBuffer(POOLED_REPLY_BYTES);
    pooled.add(ab);
  }
  return Buffer.from(ab, 0, bytes);
}

/** Give a written reply's buffer back (any Buffer may be passed; only pooled ones are kept). */
export function recycle(b: Buffer): void {
  const ab = b.buffer;
  if (ab instanceof ArrayBuffer && pooled.has(ab) && free.length < KEEP && !free.includes(ab)) free.push(ab);
}

/** Free buffers held now (tests). */
export function pooledFree(): number {
  return free.length;
}
