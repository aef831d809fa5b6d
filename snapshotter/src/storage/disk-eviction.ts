/**
 * Keeps the disk cache within `maxSizeBytes` (0 = unlimited), counting complete layers and sparse
 * (range-read) layers: sparse layers go first (they are partial, and their spans are the cheapest
 * to fetch again), then complete layers least recently read first, then extracted layers (pinned
 * ones never: a snapshot uses them). A layer the store holds (an
 * open reader, a download, a publish or a verification) is never deleted, even when that leaves
 * the cache over its limit. Runs one at a time, after downloads and whenever a layer is released.
 */
import { messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { DiskCache } from './disk-cache.js';
import type { ExtractedLayers } from './extracted-layers.js';
import type { RangeTier } from './range-tier.js';

export interface DiskEvictionOptions {
  maxSizeBytes: number;
  disk: DiskCache;
  sparse: Pick<RangeTier, 'usage' | 'evict'>;
  /** Extracted layers: counted in the limit, evicted last, never while pinned or held. */
  extracted?: Pick<ExtractedLayers, 'totalBytes' | 'lru' | 'evict'>;
  /** Whether the store holds the layer (it must stay). */
  held: (hex: string) => boolean;
  /** Called before a complete layer's file is deleted. */
  removing: (hex: string) => void;
  log: Logger;
}

/** Eviction of the layer disk cache. */
export class DiskEviction {
  readonly #o: DiskEvictionOptions;
  #running: Promise<void> = Promise.resolve();

  constructor(o: DiskEvictionOptions) {
    this.#o = o;
  }

  /** Run an eviction pass after the ones already scheduled (no-op without a limit). */
  schedule(): void {
    if (this.#o.maxSizeBytes <= 0) return;
    this.#running = this.#running.then(() => this.#evict()).catch((err) => {
      this.#o.log.warn({ err: messageOf(err) }, 'disk cache eviction failed');
    });
  }

  /** Resolves when the passes scheduled so far are done. */
  get idle(): Promise<void> {
    return this.#running;
  }

  async #evict(): Promise<void> {
    const { disk, sparse: tier, held, log, maxSizeBytes } = this.#o;
    const sparse = await tier.usage();
    let sparseBytes = sparse.reduce((n, l) => n + l.bytes, 0);
    const extracted = this.#o.extracted;
    const over = (): boolean => disk.totalBytes + sparseBytes + (extracted?.totalBytes ?? 0) > maxSizeBytes;
    for (const l of sparse) {
      if (!over()) return;
      if (l.open || held(l.hex) || !(await tier.evict(l.hex))) continue;
      sparseBytes -= l.bytes;
      log.info({ diff_id: `sha256:${l.hex}`, bytes: l.bytes }, 'evicted sparse layer from disk cache');
    }
    for (const hex of disk.lru()) {
      if (!over()) return;
      if (held(hex)) continue;
      const bytes = disk.sizeOf(hex);
      this.#o.removing(hex);
      await disk.remove(hex);
      log.info({ diff_id: `sha256:${hex}`, bytes }, 'evicted layer from disk cache');
    }
    // Last: an extracted layer is what new containers read at native speed.
    for (const { hex, bytes } of extracted?.lru() ?? []) {
      if (!over()) return;
      if (held(hex) || !(await extracted!.evict(hex))) continue;
      log.info({ diff_id: `sha256:${hex}`, bytes }, 'evicted extracted layer from disk cache');
    }
    if (over()) {
      log.debug({ bytes: disk.totalBytes + sparseBytes + (extracted?.totalBytes ?? 0), max_bytes: maxSizeBytes }, 'disk cache over its limit; the rest is pinned');
    }
  }
}
