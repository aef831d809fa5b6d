/**
 * How far past its own spans a read that misses to the registry fetches, in the same Range
 * request. A container start reads many small pieces of a layer one after another (an import
 * opening module after module, a loader faulting pages of a library), so each miss pays a whole
 * request — registry work, a round trip, a window fetch — for a quarter MiB. Taking the spans that
 * follow in the same request is nearly free when the link is fast and costs their transfer time
 * when it is slow, so the extension is sized from the link's measured speed: at most what it moves
 * in `targetMs` (the order of one request's own overhead), and at most `maxBytes` uncompressed.
 * The link is the registry's for every layer, so one estimate serves all of a store's layers.
 */
export interface FetchAheadOptions {
  /** Uncompressed bytes past a read's own spans a miss may fetch (0 = never). */
  maxBytes: number;
  /** Link time the extension may cost, at the measured rate. */
  targetMs: number;
}

/** Responses smaller than this say more about per-request overhead than about the link's rate. */
const MIN_SAMPLE_BYTES = 128 * 1024;
/** Compressed budget before any response was large enough to measure the link. */
const PROBE_BYTES = 512 * 1024;
/** Weight of a new sample in the rate's moving average. */
const ALPHA = 0.3;

/** The link's rate, learned from Range responses, and the extension it allows. */
export class FetchAhead {
  readonly #o: FetchAheadOptions;
  /** Compressed bytes per ms, or undefined before the first large enough response. */
  #rate: number | undefined;

  constructor(o: FetchAheadOptions) {
    this.#o = { ...o };
  }

  /** Uncompressed bytes a miss may fetch past its own spans. */
  get maxBytes(): number {
    return this.#o.maxBytes;
  }

  /** Compressed bytes a miss may fetch past its own spans now. */
  budget(): number {
    if (this.#o.maxBytes <= 0) return 0;
    return this.#rate === undefined ? PROBE_BYTES : Math.floor(this.#rate * this.#o.targetMs);
  }

  /** A Range response of `bytes` compressed bytes took `ms` from request to last byte. */
  observe(bytes: number, ms: number): void {
    if (bytes < MIN_SAMPLE_BYTES) return;
    const rate = bytes / Math.max(ms, 1);
    this.#rate = this.#rate === undefined ? rate : this.#rate + ALPHA * (rate - this.#rate);
  }

  /** Compressed bytes per ms as measured so far (status, tests). */
  get rate(): number | undefined {
    return this.#rate;
  }
}
