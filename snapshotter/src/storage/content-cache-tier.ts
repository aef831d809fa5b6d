/**
 * The ContentCache as the read path's middle tier, and the read path's only way to it: range reads
 * with the configured failure policy, whole-layer checks, span sharing (best effort), and
 * background publication of verified layers with the log lines operators look for — all behind one
 * circuit breaker, so a dead cache is noticed once for every use.
 *
 * Breaker states: `closed` (every read asks the cache) → after `failureThreshold` consecutive
 * `unavailable` failures → `open` (reads skip the cache: a miss under the `registry` policy, an
 * immediate failure under `error`) → after `coolDownMs` → `half_open` (exactly one read probes the
 * cache; the rest still skip) → success closes the breaker, failure opens it again.
 */
import type { ContentCache, StoreOptions, StoreResult } from '../contentcache/index.js';
import { isKind, messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { LayerRef } from './layer-reader.js';

/** What a ContentCache failure means for a read. */
export type ContentCachePolicy = 'registry' | 'error';

/** Circuit breaker tuning. */
export interface BreakerOptions {
  /** Consecutive `unavailable` failures that open the breaker. */
  failureThreshold?: number;
  /** How long an open breaker skips the cache before one probe. */
  coolDownMs?: number;
  /** Clock for the cool-down and the warning interval; tests inject one. */
  nowMs?: () => number;
}

/** Breaker state, for tests and metrics. */
export type BreakerState = 'closed' | 'open' | 'half_open';

/** Counters of the tier, for tests and metrics. */
export interface ContentCacheTierStats {
  hits: number;
  misses: number;
  failures: number;
  /** Reads that did not ask the cache because the breaker was open. */
  skipped: number;
  stored: number;
  storeFailures: number;
}

const WARN_EVERY_MS = 10_000;
const SHARE_PAUSED = 'span sharing through the ContentCache paused';

/** Reads and publishes through one ContentCache. */
export class ContentCacheTier {
  readonly cache: ContentCache;
  readonly stats: ContentCacheTierStats = { hits: 0, misses: 0, failures: 0, skipped: 0, stored: 0, storeFailures: 0 };
  readonly #policy: ContentCachePolicy;
  readonly #log: Logger;
  readonly #threshold: number;
  readonly #coolDownMs: number;
  readonly #now: () => number;
  #state: BreakerState = 'closed';
  #consecutive = 0;
  #openedAtMs = 0;
  #probing = false;
  #warnedAtMs = 0;
  #shareWarnedAtMs = Number.NEGATIVE_INFINITY;

  constructor(cache: ContentCache, policy: ContentCachePolicy, log: Logger, breaker: BreakerOptions = {}) {
    this.cache = cache;
    this.#policy = policy;
    this.#log = log;
    this.#threshold = Math.max(1, breaker.failureThreshold ?? 5);
    this.#coolDownMs = breaker.coolDownMs ?? 10_000;
    this.#now = breaker.nowMs ?? Date.now;
  }

  get breakerState(): BreakerState {
    return this.#state;
  }

  /** Bytes read on a hit, `undefined` on a miss (or an outage under the `registry` policy). */
  async read(ref: LayerRef, buf: Buffer, bufOffset: number, len: number, offset: number): Promise<number | undefined> {
    if (this.cache.name === 'none') return undefined;
    const probe = this.#admit();
    if (probe === undefined) return this.#skip(ref);
    try {
      const n = await this.cache.readInto(ref.diffId, offset, len, buf, bufOffset);
      this.#succeeded();
      if (n === undefined) {
        this.stats.misses++;
        return undefined;
      }
      // An object shorter (or longer) than its layer is not that layer: a miss, never zeros.
      const expected = Math.max(0, Math.min(len, ref.uncompressedSize - offset));
      if (n !== expected) {
        this.stats.misses++;
        this.#log.warn(
          { diff_id: ref.diffId, source: 'content_cache', offset, length: len, bytes: n, expected },
          'content cache object does not match its layer size; treating it as a miss',
        );
        return undefined;
      }
      this.stats.hits++;
      this.#log.debug({ diff_id: ref.diffId, source: 'content_cache', offset, length: len, bytes: n }, 'content cache range read hit');
      return n;
    } catch (err) {
      if (!isKind(err, 'unavailable')) {
        this.#succeeded();
        this.stats.misses++;
        this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, 'content cache read failed; treating as a miss');
        return undefined;
      }
      this.stats.failures++;
      this.#failed(err);
      if (this.#policy === 'error') {
        throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache ${this.cache.name} for layer ${ref.diffId}`, err);
      }
      this.#warnDown(ref, err);
      return undefined;
    } finally {
      if (probe) this.#probing = false;
    }
  }

  /**
   * Whether the cache holds the whole layer (`check`, prefetch); false when it does not, when the
   * breaker skips it, or when it fails (logged). Never throws, whatever the policy.
   */
  async has(ref: LayerRef): Promise<boolean> {
    const held = await this.#bestEffort(() => this.cache.has(ref.diffId, ref.uncompressedSize), (err) => {
      this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, 'content cache check failed');
    });
    return held === true;
  }

  /** A shared span (or other small blob); undefined when absent, skipped or failing. Never throws. */
  getBlob(key: string, ref: LayerRef): Promise<Buffer | undefined> {
    return this.#bestEffort(() => this.cache.getBlob(key), (err) => this.#warnShare(ref, err));
  }

  /** Offer a small blob (best effort): resolves when stored, skipped or failed; never rejects. */
  async putBlob(key: string, data: Buffer, ref: LayerRef): Promise<void> {
    await this.#bestEffort(() => this.cache.putBlob(key, data), (err) => this.#warnShare(ref, err));
  }

  /** A call no read depends on: skipped while the breaker is open, its outage counted, undefined on failure. */
  async #bestEffort<T>(call: () => Promise<T>, onError: (err: unknown) => void): Promise<T | undefined> {
    if (this.cache.name === 'none') return undefined;
    const probe = this.#admit();
    if (probe === undefined) return undefined;
    try {
      const value = await call();
      this.#succeeded();
      return value;
    } catch (err) {
      if (isKind(err, 'unavailable')) this.#failed(err);
      else this.#succeeded();
      onError(err);
      return undefined;
    } finally {
      if (probe) this.#probing = false;
    }
  }

  /** Publish a verified layer file; resolves when done (never rejects), or undefined with no cache. */
  publish(ref: LayerRef, path: string, size: number, opts?: StoreOptions): Promise<void> | undefined {
    if (this.cache.name === 'none') return undefined;
    const fields = { layer: ref.digest, diff_id: ref.diffId, key: ref.diffId, source: this.cache.name, bytes: size };
    const started = Date.now();
    this.#log.info(fields, 'storing decompressed layer');
    return this.cache.storeFile(ref.diffId, path, size, opts).then(
      (result) => this.#stored(fields, started, result),
      (err) => {
        this.stats.storeFailures++;
        this.#log.warn({ ...fields, duration_ms: Date.now() - started, err: messageOf(err) }, 'store failed');
      },
    );
  }

  #stored(fields: Record<string, unknown>, started: number, result: StoreResult | void): void {
    const duration_ms = Date.now() - started;
    if (result?.type === 'skipped') {
      this.#log.info({ ...fields, duration_ms, reason: result.reason }, 'store skipped');
      return;
    }
    this.stats.stored++;
    const extra = result?.type === 'stored' ? { chunks: result.chunks, stored_bytes: result.storedBytes } : {};
    this.#log.info({ ...fields, hash: fields['diff_id'], ...extra, duration_ms }, 'stored');
  }

  /** `false` = ask the cache, `true` = ask it as the half-open probe, `undefined` = skip it. */
  #admit(): boolean | undefined {
    if (this.#state === 'closed') return false;
    if (this.#state === 'open') {
      if (this.#now() - this.#openedAtMs < this.#coolDownMs) return undefined;
      this.#state = 'half_open';
    }
    if (this.#probing) return undefined;
    this.#probing = true;
    return true;
  }

  #skip(ref: LayerRef): undefined {
    this.stats.skipped++;
    if (this.#policy === 'error') {
      throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache ${this.cache.name} for layer ${ref.diffId} (circuit open)`);
    }
    return undefined;
  }

  #succeeded(): void {
    if (this.#state !== 'closed') this.#log.info({ source: 'content_cache' }, 'content cache reachable again; circuit closed');
    this.#state = 'closed';
    this.#consecutive = 0;
  }

  #failed(err: unknown): void {
    this.#consecutive++;
    if (this.#state === 'half_open' || (this.#state === 'closed' && this.#consecutive >= this.#threshold)) {
      if (this.#state === 'closed') {
        this.#log.warn(
          { source: 'content_cache', failures: this.#consecutive, cool_down_ms: this.#coolDownMs, err: messageOf(err) },
          'content cache circuit open; skipping it for reads',
        );
      }
      this.#state = 'open';
      this.#openedAtMs = this.#now();
    }
  }

  // One line per interval, like #warnDown: sharing is tried again once the breaker lets it.
  #warnShare(ref: LayerRef, err: unknown): void {
    const now = this.#now();
    if (now - this.#shareWarnedAtMs < WARN_EVERY_MS) return;
    this.#shareWarnedAtMs = now;
    this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, SHARE_PAUSED);
  }

  // One line per interval: a dead cache would otherwise log once per read.
  #warnDown(ref: LayerRef, err: unknown): void {
    const now = this.#now();
    if (now - this.#warnedAtMs < WARN_EVERY_MS) return;
    this.#warnedAtMs = now;
    this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, 'content cache unavailable; reading from the registry');
  }
}
