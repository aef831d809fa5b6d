/**
 * Spare memory kept to be received into again: allocating a new multi-MiB buffer per chunk costs
 * page faults and, once the buffer has moved between threads, a garbage collection. A pool holds
 * a few at most, and drops them all once nothing was kept for a while, so an idle process does not
 * hold chunk memory. Only timers and ArrayBuffers: usable on a worker thread as on the main one.
 */

/** Bounds of a `SpareBufferPool`. */
export interface SpareBufferPoolOptions {
  /** How many buffers the pool holds at most; more are not kept. */
  maxCount: number;
  /** Smallest buffer worth keeping (smaller ones are not kept); 1 unless told. */
  minBytes?: number;
  /** All buffers are dropped this long after the last one was kept. */
  idleMs: number;
}

/** A bounded pool of spare ArrayBuffers, emptied when idle; see the file header. */
export class SpareBufferPool {
  readonly #spare: ArrayBuffer[] = [];
  readonly #maxCount: number;
  readonly #minBytes: number;
  readonly #idleMs: number;
  #idle: NodeJS.Timeout | undefined;

  constructor(o: SpareBufferPoolOptions) {
    this.#maxCount = o.maxCount;
    this.#minBytes = Math.max(1, o.minBytes ?? 1);
    this.#idleMs = o.idleMs;
  }

  /** How many buffers the pool holds now. */
  get size(): number {
    return this.#spare.length;
  }

  /** Keep `ab` to hand out later; false when it is not kept (shared or too small memory, or the pool is full). */
  keep(ab: ArrayBufferLike): boolean {
    // A SharedArrayBuffer is never handed out: others may still write into it.
    if (!(ab instanceof ArrayBuffer) || ab.byteLength < this.#minBytes || this.#spare.length >= this.#maxCount) return false;
    this.#spare.push(ab);
    clearTimeout(this.#idle);
    // unref'd: spare memory never keeps a process (or a worker thread) alive.
    this.#idle = setTimeout(() => this.#spare.splice(0), this.#idleMs).unref();
    return true;
  }

  /** A kept buffer of at least `minBytes` (the one kept last that fits, its memory likeliest still warm), or undefined. */
  take(minBytes = 0): ArrayBuffer | undefined {
    for (let i = this.#spare.length - 1; i >= 0; i--) {
      if ((this.#spare[i] as ArrayBuffer).byteLength >= minBytes) return this.#spare.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Drop every buffer now and stop the idle timer (on close). */
  clear(): void {
    clearTimeout(this.#idle);
    this.#idle = undefined;
    this.#spare.splice(0);
  }
}
