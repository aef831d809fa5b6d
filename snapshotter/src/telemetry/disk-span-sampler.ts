/**
 * Keeps cached-read volume out of the exporter: a pure disk-hit read gets its own span at most
 * once per layer per interval; the hits in between are counted and reported on the next spanned
 * one (and always in the metrics). See README.md, "Disk hits".
 */
interface LayerTally {
  lastSpanMs: number;
  reads: number;
  bytes: number;
}

/** What was skipped since the previous spanned disk hit of a layer. */
export interface SkippedDiskReads {
  reads: number;
  bytes: number;
}

/** Per-layer interval sampling of disk-hit read spans. */
export class DiskSpanSampler {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #layers = new Map<string, LayerTally>();

  constructor(intervalMs = 10_000, now: () => number = Date.now) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** Whether the next disk hit of `layer` would be spanned (`take` would return a tally). */
  due(layer: string): boolean {
    const t = this.#layers.get(layer);
    return !t || this.#now() - t.lastSpanMs >= this.#intervalMs;
  }

  /** The skipped tally when this read should be spanned (and the tally resets), else undefined. */
  take(layer: string): SkippedDiskReads | undefined {
    const now = this.#now();
    const t = this.#layers.get(layer);
    if (t && now - t.lastSpanMs < this.#intervalMs) return undefined;
    const skipped = { reads: t?.reads ?? 0, bytes: t?.bytes ?? 0 };
    this.#layers.set(layer, { lastSpanMs: now, reads: 0, bytes: 0 });
    return skipped;
  }

  /** Count a disk hit that was served without a span. */
  skip(layer: string, bytes: number): void {
    const t = this.#layers.get(layer);
    if (!t) return;
    t.reads++;
    t.bytes += bytes;
  }

  /** Forget a layer (released or evicted). */
  forget(layer: string): void {
    this.#layers.delete(layer);
  }
}
