/**
 * The ContentCache as the read path's middle tier: range reads with the configured failure policy,
 * and background publication of verified layers with the log lines operators look for.
 */
import type { ContentCache } from '../contentcache/index.js';
import { isKind, messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { STORAGE_ERROR_CODES as CODES } from './errors.js';
import type { LayerRef } from './layer-reader.js';

/** What a ContentCache failure means for a read. */
export type ContentCachePolicy = 'registry' | 'error';

const WARN_EVERY_MS = 10_000;

/** Reads and publishes through one ContentCache. */
export class ContentCacheTier {
  readonly cache: ContentCache;
  readonly #policy: ContentCachePolicy;
  readonly #log: Logger;
  #warnedAtMs = 0;

  constructor(cache: ContentCache, policy: ContentCachePolicy, log: Logger) {
    this.cache = cache;
    this.#policy = policy;
    this.#log = log;
  }

  /** Bytes read on a hit, `undefined` on a miss (or an outage under the `registry` policy). */
  async read(ref: LayerRef, buf: Buffer, bufOffset: number, len: number, offset: number): Promise<number | undefined> {
    try {
      const n = await this.cache.readInto(ref.diffId, offset, len, buf, bufOffset);
      if (n !== undefined) this.#log.debug({ diff_id: ref.diffId, source: 'content_cache', offset, length: len, bytes: n }, 'content cache range read hit');
      return n;
    } catch (err) {
      if (!isKind(err, 'unavailable')) {
        this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, 'content cache read failed; treating as a miss');
        return undefined;
      }
      if (this.#policy === 'error') {
        throw unavailable(CODES.contentCacheUnavailable, `content cache ${this.cache.name} for layer ${ref.diffId}`, err);
      }
      this.#warnDown(ref, err);
      return undefined;
    }
  }

  /** Publish a verified layer file; resolves when done (never rejects), or undefined with no cache. */
  publish(ref: LayerRef, path: string, size: number): Promise<void> | undefined {
    if (this.cache.name === 'none') return undefined;
    const fields = { layer: ref.digest, diff_id: ref.diffId, key: ref.diffId, source: this.cache.name, bytes: size };
    const started = Date.now();
    this.#log.info(fields, 'storing decompressed layer');
    return this.cache.storeFile(ref.diffId, path, size).then(
      () => this.#log.info({ ...fields, duration_ms: Date.now() - started }, 'stored'),
      (err) => this.#log.warn({ ...fields, duration_ms: Date.now() - started, err: messageOf(err) }, 'store failed'),
    );
  }

  // One line per interval: a dead cache would otherwise log once per read.
  #warnDown(ref: LayerRef, err: unknown): void {
    const now = Date.now();
    if (now - this.#warnedAtMs < WARN_EVERY_MS) return;
    this.#warnedAtMs = now;
    this.#log.warn({ diff_id: ref.diffId, source: 'content_cache', err: messageOf(err) }, 'content cache unavailable; reading from the registry');
  }
}
