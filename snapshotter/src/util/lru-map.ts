/**
 * A Map bounded to `capacity` that evicts the least recently used entries. `capacity` counts
 * entries, or, given `weigh`, the sum of the entries' weights (e.g. bytes); an entry heavier than
 * the whole capacity is not kept. `onRemove`, when given, is told of every entry that leaves the map
 * (evicted, deleted or replaced), e.g. to reuse its memory.
 */
export class LruMap<K, V> {
  #map = new Map<K, V>();
  #capacity: number;
  #weigh: ((value: V) => number) | undefined;
  #weight = 0;
  readonly #onRemove: ((key: K, value: V) => void) | undefined;

  constructor(capacity: number, weigh?: (value: V) => number, onRemove?: (key: K, value: V) => void) {
    this.#capacity = weigh ? capacity : Math.max(1, Math.floor(capacity));
    this.#weigh = weigh;
    this.#onRemove = onRemove;
  }

  /** The value for `key`, marking it most recently used. */
  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v === undefined) return undefined;
    this.#map.delete(key);
    this.#map.set(key, v);
    return v;
  }

  /** The value for `key` without marking it used. */
  peek(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Whether `key` is held (without marking it used). */
  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** Insert or replace, evicting the oldest entries while over capacity. */
  set(key: K, value: V): void {
    this.delete(key);
    const w = this.#weightOf(value);
    if (w > this.#capacity) return;
    this.#map.set(key, value);
    this.#weight += w;
    for (const [k, v] of this.#map) {
      if (this.#weight <= this.#capacity) break;
      this.#map.delete(k);
      this.#weight -= this.#weightOf(v);
      this.#onRemove?.(k, v);
    }
  }

  /** Remove `key`; true when it was there. */
  delete(key: K): boolean {
    if (!this.#map.has(key)) return false;
    const v = this.#map.get(key) as V;
    this.#weight -= this.#weightOf(v);
    this.#map.delete(key);
    this.#onRemove?.(key, v);
    return true;
  }

  /** Remove every entry whose key matches. */
  deleteWhere(match: (key: K) => boolean): void {
    for (const k of [...this.#map.keys()]) if (match(k)) this.delete(k);
  }

  get size(): number {
    return this.#map.size;
  }

  /** The sum of the entries' weights (their count without `weigh`). */
  get weight(): number {
    return this.#weight;
  }

  #weightOf(value: V): number {
    return this.#weigh ? this.#weigh(value) : 1;
  }
}
