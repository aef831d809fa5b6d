/**
 * How far past its own spans a read that misses to the registry fetches, in the same Range
 * request. A container start reads many small pieces of a layer one after another (an import
 * opening module after module, a loader faulting pages of a library), so each miss pays a whole
 * request — registry work, a round trip, a window fetch — for a quarter MiB. Taking the spans that
 * follow in the same request is nearly free when the link is fast and costs their transfer time
 * when it is slow, so the extension is sized from the link's measured speed: at most what it moves
 * in `targetMs` (the order of one request's own overhead), and at most `maxBytes` uncompressed.
 * The link is the registry's for every layer, so one estimate serves all of a store's layers.
 *
 * A response's time is the request's own overhead (round trip, registry work) plus its bytes'
 * transfer. Dividing bytes by the whole time makes a fast link whose requests each cost a few ms
 * (docker-registry on loopback: ≈ 7 ms for 16 KiB and for 1 MiB alike) look slow, and the estimate
 * then keeps every extension small, since small responses measure mostly overhead. So small
 * responses (gzip windows, single spans) measure the overhead, and the rate comes from what large
 * ones took beyond it.
 */
export interface FetchAheadOptions {
  /** Uncompressed bytes past a read's own spans a miss may fetch (0 = never). */
  maxBytes: number;
  /** Link time the extension may cost, at the measured rate. */
  targetMs: number;
}

/** Responses smaller than this measure a request's overhead; larger ones the link's rate. */
const MIN_SAMPLE_BYTES = 128 * 1024;
/** Compressed budget before any response was large enough to measure the link. */
const PROBE_BYTES = 512 * 1024;
/** Weight of a new sample in the moving averages. */
const ALPHA = 0.3;
/**
 * A large response's transfer time is taken as at least this share of its whole time: the
 * overhead estimate is an average, and a response faster than it would otherwise imply an
 * unbounded rate (this caps one sample at 4× the bytes-over-whole-time rate).
 */
const MIN_TRANSFER_SHARE = 0.25;

/** The link's rate, learned from Range responses, and the extension it allows. */
export class FetchAhead {
  readonly #o: FetchAheadOptions;
  /** Compressed bytes per ms, or undefined before the first large enough response. */
  #rate: number | undefined;
  /** Time of a small response (a request's own overhead), or undefined before the first. */
  #overheadMs: number | undefined;

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
    if (bytes < MIN_SAMPLE_BYTES) {
      this.#overheadMs = this.#overheadMs === undefined ? ms : this.#overheadMs + ALPHA * (ms - this.#overheadMs);
      return;
    }
    const transferMs = Math.max(ms - (this.#overheadMs ?? 0), ms * MIN_TRANSFER_SHARE, 1);
    const rate = bytes / transferMs;
    this.#rate = this.#rate === undefined ? rate : this.#rate + ALPHA * (rate - this.#rate);
  }

  /** Compressed bytes per ms as measured so far (status, tests). */
  get rate(): number | undefined {
    return this.#rate;
  }

  /** A small response's time as measured so far: a request's own overhead (status, tests). */
  get overheadMs(): number | undefined {
    return this.#overheadMs;
  }
}
