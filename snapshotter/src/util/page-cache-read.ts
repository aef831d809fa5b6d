/**
 * Positional reads served only from the page cache (the `clip_pagecache` addon's
 * preadv2(RWF_NOWAIT)): a cached range is copied on the calling thread at once, and a range that
 * would wait for a disk is left to the asynchronous path. Without the addon every read takes the
 * asynchronous path, as before.
 */
import { loadNativeAddon } from './native-addon.js';

interface PageCacheNative {
  preadNowait(fd: number, buf: Buffer, bufOffset: number, length: number, position: number): number;
}

let cached: PageCacheNative | null | undefined;

function native(): PageCacheNative | undefined {
  // null: looked for and not built (asked once per process).
  if (cached === undefined) cached = loadNativeAddon<PageCacheNative>('clip_pagecache', 'CLIP_PAGECACHE_ADDON', import.meta.url) ?? null;
  return cached ?? undefined;
}

/** Whether reads can be served from the page cache here (the addon is built). */
export function pageCacheReadsAvailable(): boolean {
  return native() !== undefined;
}

/**
 * Copy what the page cache holds of `length` bytes at `position` of `fd` into `buf` at
 * `bufOffset`, never waiting for I/O: the bytes copied (fewer when the rest is not cached or past
 * the end of the file; 0 when nothing was). Throws the errno-coded Error of a failed read.
 */
export function readCachedNow(fd: number, buf: Buffer, bufOffset: number, length: number, position: number): number {
  const n = native();
  if (n === undefined || length === 0) return 0;
  return Math.max(0, n.preadNowait(fd, buf, bufOffset, length, position));
}
