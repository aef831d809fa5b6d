/** A least-recently-used map of decoded chunks, bounded by total bytes rather than entries. */
export class ChunkLru {
  readonly #maxBytes: number;
  readonly #entries = new Map<string, Buffer>();
  #bytes = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Bytes currently held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The chunk, refreshed as most recently used. */
  get(key: string): Buffer | undefined {
    const v = this.#entries.get(key);
    if (v === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, v);
    return v;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Insert, evicting the oldest entries; a chunk larger than the whole budget is not kept. */
  set(key: string, value: Buffer): void {
    this.delete(key);
    if (value.length > this.#maxBytes) return;
    this.#entries.set(key, value);
    this.#bytes += value.length;
    for (const [k, v] of this.#entries) {
      if (this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= v.length;
    }
  }

  delete(key: string): void {
    const v = this.#entries.get(key);
    if (v === undefined) return;
    this.#entries.delete(key);
    this.#bytes -= v.length;
  }

  /** Drop every chunk whose key starts with `prefix` (one object's chunks). */
  deletePrefix(prefix: string): void {
    for (const k of [...this.#entries.keys()]) if (k.startsWith(prefix)) this.delete(k);
  }
}
