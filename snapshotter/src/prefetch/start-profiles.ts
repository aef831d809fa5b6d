/**
 * Start profiles end to end: when a lazy layer is mounted, fetch its profile from the ContentCache
 * and prefetch those ranges (spans, through the range tier) before the container asks; record what
 * the container reads in its first seconds and publish the union back, so the next cold node
 * prefetches it.
 */
import type { ContentCache } from '../contentcache/index.js';
import { messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { ByteRange, LayerReader, LayerRef, LayerStore } from '../storage/index.js';
import { ATTR_CLIP_BYTES, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, SPAN_PREFETCH, withSpan } from '../telemetry/index.js';
import { RecordingLayerReader } from './read-recorder.js';
import { boundRanges, coveredBytes, decodeProfile, encodeProfile, profileKey } from './start-profile.js';

export interface StartProfilesOptions {
  contentCache: ContentCache;
  store: Pick<LayerStore, 'prefetch'>;
  /** How long after a layer's first read its reads are recorded. */
  recordWindowMs: number;
  /** Uncompressed bytes prefetched per layer at most; 0 = no limit. */
  maxBytes: number;
  log: Logger;
}

/** Prefetch from, and record into, per-layer start profiles. */
export class StartProfiles {
  readonly #o: StartProfilesOptions;
  readonly #stop = new AbortController();
  readonly #work = new Set<Promise<unknown>>();

  constructor(o: StartProfilesOptions) {
    this.#o = o;
  }

  /**
   * Start prefetching a newly mounted layer from its profile (in the background) and return the
   * reader the mount should use: it records the first window of reads.
   */
  attach(reader: LayerReader): LayerReader {
    const ref = reader.layer;
    this.#track(this.#prefetch(ref));
    return new RecordingLayerReader(reader, this.#o.recordWindowMs, (ranges) => {
      this.#track(this.#publish(ref, ranges));
    });
  }

  /** Wait for prefetches and publishes in flight (tests). */
  async drain(): Promise<void> {
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
  }

  /** Abort prefetches; publishes in flight finish. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.drain();
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#work.add(p);
    void p.finally(() => this.#work.delete(p)).catch(() => {});
    return p;
  }

  /** The stored profile, or [] when there is none or it cannot be read (logged). */
  async #load(ref: LayerRef): Promise<ByteRange[]> {
    try {
      const buf = await this.#o.contentCache.getBlob(profileKey(ref.diffId));
      return buf ? decodeProfile(buf, ref.uncompressedSize) : [];
    } catch (err) {
      this.#o.log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err), code: (err as { code?: string }).code }, 'start profile unreadable; not prefetching');
      return [];
    }
  }

  /** Prefetch a layer's profile, if it has one. */
  async #prefetch(ref: LayerRef): Promise<void> {
    const ranges = await this.#load(ref);
    if (ranges.length === 0) return;
    const attrs = { [ATTR_CLIP_LAYER_DIGEST]: ref.digest, [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId };
    await withSpan(SPAN_PREFETCH, attrs, async (span) => {
      const started = Date.now();
      const fetched = await this.#o.store.prefetch(ref, ranges, this.#o.maxBytes, this.#stop.signal);
      span.setAttribute(ATTR_CLIP_BYTES, fetched);
      if (fetched > 0) {
        this.#o.log.info({ layer: ref.digest, diff_id: ref.diffId, bytes: fetched, profile_bytes: coveredBytes(ranges), duration_ms: Date.now() - started }, 'prefetched layer start profile');
      }
    }, { root: true });
  }

  /** Publish the union of the stored profile and what was read, when the reads added anything. */
  async #publish(ref: LayerRef, read: readonly ByteRange[]): Promise<void> {
    const latest = await this.#load(ref);
    const merged = boundRanges([...latest, ...read]);
    if (coveredBytes(merged) === coveredBytes(latest) && merged.length === latest.length) return;
    try {
      await this.#o.contentCache.putBlob(profileKey(ref.diffId), encodeProfile(merged));
      this.#o.log.info({ layer: ref.digest, diff_id: ref.diffId, ranges: merged.length, bytes: coveredBytes(merged) }, 'start profile published');
    } catch (err) {
      this.#o.log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err) }, 'publishing the start profile failed');
    }
  }
}
