/**
 * The range-read tier (`LayerStoreOptions.rangeReads`; on by default in the daemon): a miss on a
 * gzip or multi-frame zstd layer whose index carries a random-access table decodes only the spans
 * it touches — from the ContentCache when another node already decoded them, else from HTTP Range
 * requests — into a sparse per-layer file, every span checked against its sha256. A permanent
 * failure (no addon, a corrupt table or window, a registry that ignores Range or lies) turns the
 * tier off for the layer and its reads take the whole-layer download; a transient one does so for
 * 30 s. Background completion and prefetch (start profiles) go through the same sparse files.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { dataCorrupt, findClipError, kindOf, messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { systemClock, type Clock } from '../util/clock.js';
import { hasSpanTable, spanAt, spanCodecFor, spanEnd, type SpanBounds, type SpanTable } from '../zran/index.js';
import { boundedMap } from '../util/bounded-map.js';
import { withTimeout } from '../util/abortable.js';
import type { BlobSource } from './blob-source.js';
import { isAuthRefusal } from '../registry/index.js';
import type { ContentCacheTier } from './content-cache-tier.js';
import { hashFile } from './disk-cache.js';
import type { LayerRef, ReadSource } from './layer-reader.js';
import { SparseLayer, type SpanShare } from './sparse-layer.js';
import type { FetchAhead } from './fetch-ahead.js';
import { SpanOfferQueue, type SpanOfferQueueOptions } from './span-offer-queue.js';
import type { LayerLedger } from './layer-ledger.js';
import type { ReadActivity } from './read-activity.js';
import type { Span } from '@opentelemetry/api';
import {
  ATTR_CLIP_BYTES, ATTR_CLIP_BYTES_COMPRESSED, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_LAYER_SIZE, ATTR_CLIP_SOURCE,
  SPAN_LAYER_COMPLETE, recordSpanError, withSpan,
} from '../telemetry/index.js';

interface RangeLayer {
  layer?: Promise<SparseLayer>;
  /** The layer once open (what the synchronous `diskRange` can use). */
  open?: SparseLayer;
  /** Permanently off for this process (corrupt table or data, no Range support, completed). */
  disabled?: boolean;
  /** Off until then after a transient failure (registry unreachable, timeout). */
  retryAt?: number;
  completing?: Promise<void>;
}

/** An uncompressed byte range [start, end). */
export type ByteRange = readonly [number, number];

const DEFAULT_TRANSIENT_COOLDOWN_MS = 30_000;
const DEFAULT_BACKGROUND_REQUEST_TIMEOUT_MS = 120_000;
/** Concurrent Range requests of one prefetch. */
const PREFETCH_CONCURRENCY = 3;

/** What the tier does with a layer whose every span is present and whose file hashes to its diffID. */
export type AdoptLayer = (ref: LayerRef, path: string) => Promise<void>;

export interface RangeTierOptions {
  dir: string;
  blobs: BlobSource;
  log: Logger;
  /** Background completion rate after the first range read; 0 = none. */
  completionBytesPerSec: number;
  /** Completion waits until no on-demand range fetch has run for this long. */
  completionIdleMs?: number;
  /**
   * Decoded spans are shared through the ContentCache tier (`span:v1:<diffID>:<start>-<end>`
   * blobs, behind the tier's breaker): a span another node already range-read costs no registry
   * request. Omitted or a `none` cache: no sharing.
   */
  contentCache?: ContentCacheTier | undefined;
  /** Counts what each layer fetched and why (on demand, prefetch, background); optional. */
  ledger?: Pick<LayerLedger, 'fetched' | 'shared'> | undefined;
  adopt: AdoptLayer;
  /** Completion found the layer does not hash to its diffID: the store quarantines it (`key` = state key). */
  quarantine?: (key: string, ref: LayerRef, err: unknown) => void;
  /** Cool-downs, the idle wait and the completion rate run on it; tests inject one. */
  clock?: Clock;
  /**
   * Deadline of one Range request no reader waits for (a prefetch run, a completion batch);
   * default 120 s. On-demand reads carry their own read's deadline.
   */
  backgroundRequestTimeoutMs?: number;
  /** How long a transient failure keeps a layer on the whole-layer path; default 30 s. */
  transientCooldownMs?: number;
  /** Largest span a layer's table may have (`[index] max_span_*`); a table over it turns range reads off for the layer. */
  spanBounds?: SpanBounds | undefined;
  /** The link's rate and how far a read's miss fetches past its own spans (one for every layer: they share the link). */
  fetchAhead?: FetchAhead | undefined;
  /**
   * How span offers to the ContentCache wait for on-demand fetches to pause (`span-offer-queue.ts`);
   * the log is the tier's, the clock the system's unless given here (not `clock`: its sleeps are the tests' to count).
   */
  spanOffers?: Omit<SpanOfferQueueOptions, 'log'> | undefined;
  /** Completion batches, the completed layer's hash and span offers also wait for FUSE requests to pause (`read-activity.ts`). */
  activity?: Pick<ReadActivity, 'pass' | 'reading'> | undefined;
  /** Whether completion batches pass `activity` too (default true); the hash and span offers always do. */
  fillYields?: boolean | undefined;
}

/**
 * Sparse layers under `<dir>/<key>`, one per `layerStateKey` (diffID + blob digest + span tables,
 * `layer-key.ts`): spans verified against one index are never served to an image that merely
 * claims the same diffID. Methods take that key; the ledger is told the diffID's hex.
 */
export class RangeTier {
  readonly #dir: string;
  readonly #blobs: BlobSource;
  readonly #log: Logger;
  readonly #o: RangeTierOptions;
  readonly #clock: Clock;
  readonly #layers = new Map<string, RangeLayer>();
  readonly #stop = new AbortController();
  #made: Promise<unknown> | undefined;
  /** When an on-demand read or a prefetch last had to fetch spans (any layer: they share the link). */
  #lastDemand = 0;
  readonly #cooldownMs: number;
  readonly #requestTimeoutMs: number;
  /** Decoded spans waiting to be offered to the ContentCache (one queue: every layer shares the thread). */
  readonly #offers: SpanOfferQueue;

  constructor(o: RangeTierOptions) {
    this.#o = o;
    this.#offers = new SpanOfferQueue({ ...o.spanOffers, log: o.log, activity: o.activity });
    this.#cooldownMs = o.transientCooldownMs ?? DEFAULT_TRANSIENT_COOLDOWN_MS;
    this.#requestTimeoutMs = o.backgroundRequestTimeoutMs ?? DEFAULT_BACKGROUND_REQUEST_TIMEOUT_MS;
    this.#dir = o.dir;
    this.#blobs = o.blobs;
    this.#log = o.log;
    this.#clock = o.clock ?? systemClock;
  }

  /** Whether a read of this layer may try the tier. */
  usable(hex: string, ref: LayerRef): boolean {
    const st = this.#layers.get(hex);
    if (st?.disabled === true || (st?.retryAt !== undefined && this.#clock.nowMs() < st.retryAt)) return false;
    return hasSpanTable(ref) && this.#blobs.fetchRange !== undefined;
  }

  /**
   * Serve a read from spans, or undefined (after logging why) when the whole-layer path must.
   * `source` says where its bytes came from: spans already on disk, shared by another node, or the
   * registry (judged by this layer's counters, so concurrent reads of one layer may share a label).
   */
  async read(
    hex: string, ref: LayerRef, buf: Buffer, bufOffset: number, len: number, offset: number, signal: AbortSignal,
  ): Promise<{ n: number; source: ReadSource } | undefined> {
    const st = this.#state(hex);
    if (!this.usable(hex, ref)) return undefined;
    try {
      st.layer ??= this.#open(hex, ref).then((l) => (st.open = l));
      const layer = await st.layer;
      const before = layer.fetchedBytes;
      const shared = layer.sharedBytes;
      const demandEnded = this.#offers.demand();
      let n: number;
      try {
        n = await layer.read(buf, bufOffset, len, offset, signal);
      } finally {
        demandEnded();
      }
      const fetched = layer.fetchedBytes !== before;
      this.#o.ledger?.fetched(diffHex(ref), 'on_demand', layer.fetchedBytes - before);
      this.#o.ledger?.shared(diffHex(ref), layer.sharedBytes - shared);
      if (fetched) this.#lastDemand = this.#clock.nowMs();
      this.#startCompletion(hex, ref, st);
      return { n, source: fetched ? 'registry' : layer.sharedBytes !== shared ? 'content_cache' : 'disk' };
    } catch (err) {
      this.#failed(hex, ref, st, err, signal);
      return undefined;
    }
  }

  /**
   * The disk half of the tier: serve a read from spans this node already holds, or undefined
   * (nothing is fetched). Lets the read path try local spans before the ContentCache.
   */
  async readPresent(hex: string, buf: Buffer, bufOffset: number, len: number, offset: number): Promise<number | undefined> {
    const st = this.#layers.get(hex);
    if (!st?.layer || st.disabled) return undefined;
    const layer = await st.layer.catch(() => undefined);
    if (!layer) return undefined;
    // The container is reading: span offers wait for its reads to pause (`SpanOfferQueue.touch`).
    this.#offers.touch();
    return layer.readPresent(buf, bufOffset, len, offset);
  }

  /**
   * Where a read's bytes lie in the layer's sparse file when all its spans are verified there (a
   * FUSE driver splices them to the kernel without copying them through this thread); undefined
   * otherwise (nothing is fetched). Counts as a read for the span offers, like `readPresent`.
   */
  diskRange(hex: string, offset: number, length: number): { fd: number; position: number } | undefined {
    const st = this.#layers.get(hex);
    if (!st?.open || st.disabled) return undefined;
    const r = st.open.diskRange(offset, length);
    if (r) this.#offers.touch();
    return r;
  }

  /**
   * Fetch the spans covering `ranges` (a start profile) ahead of the reads, at most `maxBytes`
   * uncompressed (0 = all), a few Range requests at a time; resolves to compressed bytes fetched.
   * Failures are logged and end the prefetch; reads then take their usual path.
   */
  async prefetch(hex: string, ref: LayerRef, ranges: readonly ByteRange[], maxBytes: number, signal: AbortSignal): Promise<number> {
    if (!this.usable(hex, ref)) return 0;
    const st = this.#state(hex);
    try {
      st.layer ??= this.#open(hex, ref).then((l) => (st.open = l));
      const layer = await st.layer;
      const runs = spanRuns(layer.table, ranges, maxBytes);
      const before = layer.fetchedBytes;
      const shared = layer.sharedBytes;
      this.#lastDemand = this.#clock.nowMs();
      const demandEnded = this.#offers.demand();
      try {
        await boundedMap(runs, PREFETCH_CONCURRENCY, async ([first, last]) => {
          await layer.ensure(first, last, withTimeout(signal, this.#requestTimeoutMs));
          this.#lastDemand = this.#clock.nowMs();
        }, signal);
      } finally {
        demandEnded();
      }
      this.#o.ledger?.fetched(diffHex(ref), 'prefetch', layer.fetchedBytes - before);
      this.#o.ledger?.shared(diffHex(ref), layer.sharedBytes - shared);
      this.#startCompletion(hex, ref, st);
      return layer.fetchedBytes - before;
    } catch (err) {
      this.#failed(hex, ref, st, err, signal);
      return 0;
    }
  }

  /**
   * Sparse files on disk with their allocated bytes, and whether this tier has them open (a
   * mounted layer's sparse file is never evicted).
   */
  async usage(): Promise<Array<{ hex: string; bytes: number; open: boolean }>> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    const out: Array<{ hex: string; bytes: number; open: boolean }> = [];
    for (const name of names) {
      if (!/^[0-9a-f]{64}$/.test(name)) continue;
      const s = await stat(join(this.#dir, name)).catch(() => undefined);
      if (s) out.push({ hex: name, bytes: s.blocks * 512, open: this.#layers.has(name) });
    }
    return out;
  }

  /** Delete a sparse layer nothing has open (disk-cache eviction). */
  async evict(hex: string): Promise<boolean> {
    if (this.#layers.has(hex)) return false;
    await rm(join(this.#dir, hex), { force: true });
    await rm(join(this.#dir, `${hex}.spans`), { force: true });
    return true;
  }

  #state(hex: string): RangeLayer {
    let st = this.#layers.get(hex);
    if (!st) this.#layers.set(hex, (st = {}));
    return st;
  }

  /**
   * A transient failure (registry unreachable, a read's deadline) sends the layer down the
   * whole-layer path for a while and keeps its spans; anything else (corrupt table or data, a
   * registry that ignores Range) turns range reads off for the layer and deletes its sparse file.
   * Refused credentials count as transient: the spans stay valid and credentials may come back
   * (a new CRI pull, a rotated config.json).
   */
  #failed(hex: string, ref: LayerRef, st: RangeLayer, err: unknown, signal: AbortSignal): void {
    if (st.disabled) return;
    const code = (err as { code?: string }).code;
    if (signal.aborted || kindOf(err) === 'unavailable' || isAuthRefusal(err)) {
      st.retryAt = this.#clock.nowMs() + this.#cooldownMs;
      this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err), code, retry_in_ms: this.#cooldownMs }, 'range read failed; this layer uses the whole-layer path for now');
      return;
    }
    st.disabled = true;
    this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err), code }, 'range reads disabled for layer; fetching it whole');
    void st.layer?.then((l) => l.remove()).catch(() => {});
  }

  #startCompletion(hex: string, ref: LayerRef, st: RangeLayer): void {
    if (this.#o.completionBytesPerSec > 0) st.completing ??= this.#complete(hex, ref, st);
  }

  /** Resolves once no on-demand fetch has run for `completionIdleMs`. */
  async #waitIdle(): Promise<void> {
    const idleMs = this.#o.completionIdleMs ?? 0;
    for (;;) {
      const wait = this.#lastDemand + idleMs - this.#clock.nowMs();
      if (wait <= 0) return;
      await this.#clock.sleep(wait, this.#stop.signal);
    }
  }

  /** Uncompressed bytes of a layer's spans on disk, and whether its background completion runs. */
  async presence(hex: string): Promise<{ presentBytes: number; completing: boolean }> {
    const st = this.#layers.get(hex);
    const layer = st?.layer && !st.disabled ? await st.layer.catch(() => undefined) : undefined;
    return { presentBytes: layer?.presentBytes ?? 0, completing: st?.completing !== undefined && st.disabled !== true };
  }

  /** Compressed bytes fetched through ranges for a layer (tests, metrics). */
  async fetchedBytes(hex: string): Promise<number> {
    const l = this.#layers.get(hex)?.layer;
    return l ? (await l.catch(() => undefined))?.fetchedBytes ?? 0 : 0;
  }

  /** The full layer is cached now: the sparse copy is no longer needed. */
  async completed(hex: string): Promise<void> {
    const st = this.#layers.get(hex);
    this.#layers.delete(hex);
    await st?.layer?.then((l) => l.remove()).catch(() => {});
  }

  /** A quarantined layer: no more Range reads for it in this process, and its sparse file is deleted. */
  async quarantine(key: string): Promise<void> {
    const st = this.#state(key);
    st.disabled = true;
    const layer = st.layer;
    if (layer) await layer.then((l) => l.remove()).catch(() => {});
    else {
      await rm(join(this.#dir, key), { force: true });
      await rm(join(this.#dir, `${key}.spans`), { force: true });
    }
  }

  /** Close a layer's sparse file (nothing reads it any more); its spans stay for a later mount. */
  async release(hex: string): Promise<void> {
    const st = this.#layers.get(hex);
    if (!st || st.disabled) return;
    this.#layers.delete(hex);
    await st.layer?.then((l) => l.close()).catch(() => {});
  }

  /** Wait for background completions (tests, shutdown after `close`). */
  async drain(): Promise<void> {
    await Promise.all([...this.#layers.values()].map((st) => st.completing));
  }

  /** Abort background completions (their spans so far stay on disk for the next start). */
  stop(): void {
    this.#stop.abort();
  }

  /** Resolves once every queued span offer is published or dropped (tests). */
  spanOffersSettled(): Promise<void> {
    return this.#offers.settled();
  }

  /** Span offer counters (tests, status). */
  get spanOfferStats(): SpanOfferQueue['stats'] {
    return this.#offers.stats;
  }

  async close(): Promise<void> {
    this.stop();
    await this.#offers.close();
    await this.drain();
    await Promise.all([...this.#layers.keys()].map((hex) => this.release(hex)));
  }

  /**
   * Background completion: fetch the remaining spans at a bounded rate, check the whole file
   * against the diffID, and hand it to the disk cache (which publishes it to the ContentCache).
   */
  async #complete(hex: string, ref: LayerRef, st: RangeLayer): Promise<void> {
    const attrs = { [ATTR_CLIP_SOURCE]: 'registry', [ATTR_CLIP_LAYER_DIGEST]: ref.digest, [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId, [ATTR_CLIP_LAYER_SIZE]: ref.uncompressedSize };
    await withSpan(SPAN_LAYER_COMPLETE, attrs, (span) => this.#completeTraced(hex, ref, st, span), { root: true });
  }

  async #completeTraced(hex: string, ref: LayerRef, st: RangeLayer, span: Span): Promise<void> {
    const started = Date.now();
    let fetched = 0;
    try {
      const layer = await (st.layer as Promise<SparseLayer>);
      // Counted batch by batch, so `status` shows the completion's progress while it runs.
      let counted = layer.fetchedBytes;
      const account = (): void => {
        fetched += layer.fetchedBytes - counted;
        this.#o.ledger?.fetched(diffHex(ref), 'background', layer.fetchedBytes - counted);
        counted = layer.fetchedBytes;
      };
      await layer.fill(this.#o.completionBytesPerSec, this.#stop.signal, undefined, async () => {
        account();
        await this.#waitIdle();
        // The container's reads of spans already here, and of other layers, come first too (unless
        // `fillYields: false`: a cold start may gain from the spans completion fetches meanwhile).
        if (this.#o.fillYields !== false) await this.#o.activity?.pass('fill', this.#stop.signal);
        // On-demand reads during the wait are theirs, not the completion's.
        counted = layer.fetchedBytes;
      }, this.#clock, this.#requestTimeoutMs).finally(account);
      const path = join(this.#dir, hex);
      // Hashed whole on a worker thread: it cannot pause part-way, but it can start when the reads pause.
      await this.#o.activity?.pass('hash', this.#stop.signal);
      this.#stop.signal.throwIfAborted();
      const actual = `sha256:${await hashFile(path)}`;
      if (actual !== ref.diffId) throw dataCorrupt('CLIP_LAYER_DIFF_ID_MISMATCH', `sparse layer ${hex} hashes to ${actual}`);
      await this.#o.adopt(ref, path);
      this.#log.info({ layer: ref.digest, diff_id: ref.diffId, bytes: layer.fetchedBytes, duration_ms: Date.now() - started }, 'layer completed from range reads');
      st.disabled = true;
      await layer.remove();
      span.setAttributes({ [ATTR_CLIP_BYTES_COMPRESSED]: fetched, [ATTR_CLIP_BYTES]: ref.uncompressedSize });
    } catch (err) {
      span.setAttribute(ATTR_CLIP_BYTES_COMPRESSED, fetched);
      if (this.#stop.signal.aborted) return;
      recordSpanError(span, err);
      if (findClipError(err)?.code === 'CLIP_LAYER_DIFF_ID_MISMATCH') {
        // Not retried: every span matched the index, so the index describes other bytes.
        this.#o.quarantine?.(hex, ref, err);
        await this.quarantine(hex);
        return;
      }
      st.completing = undefined;
      this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err) }, 'background completion of a range-read layer failed');
    }
  }

  async #open(hex: string, ref: LayerRef): Promise<SparseLayer> {
    const fetchRange = this.#blobs.fetchRange?.bind(this.#blobs);
    if (!fetchRange) throw new Error('blob source cannot fetch ranges');
    // A window pack lives beside the index artifact, in the layer's repository. Its responses are
    // small: what they take tells the fetch-ahead a request's own overhead.
    const fa = this.#o.fetchAhead;
    const fetchPack = async (digest: string, start: number, end: number, signal: AbortSignal): Promise<Buffer> => {
      const started = Date.now();
      const bytes = await fetchRange({ ...ref, digest }, start, end, signal);
      fa?.observe(bytes.length, Date.now() - started);
      return bytes;
    };
    const codec = spanCodecFor(ref, fetchPack, this.#o.spanBounds);
    this.#made ??= mkdir(this.#dir, { recursive: true });
    await this.#made;
    return SparseLayer.open({
      codec, path: join(this.#dir, hex), log: this.#log,
      fetchRange: (start, end, signal) => fetchRange(ref, start, end, signal),
      share: this.#spanShare(ref, codec.table),
      // Readahead is background work too: `[reads] background_request_timeout_ms` bounds it.
      readaheadTimeoutMs: this.#requestTimeoutMs,
      fetchAhead: this.#o.fetchAhead,
    });
  }

  /** Spans of this layer in the ContentCache, keyed by diffID and uncompressed extent. */
  #spanShare(ref: LayerRef, table: SpanTable): SpanShare | undefined {
    const cc = this.#o.contentCache;
    if (!cc || cc.cache.name === 'none') return undefined;
    const key = (i: number): string => `span:v1:${ref.diffId}:${table.points[i]?.out ?? 0}-${spanEnd(table, i)}`;
    return {
      get: (i) => cc.getBlob(key(i), ref),
      // Queued, not published here: the reads waiting on the next spans come first.
      put: (i, data, reload) => this.#offers.enqueue({ key: key(i), group: ref.diffId, data, reload, publish: (d) => cc.putBlob(key(i), d, ref) }),
    };
  }
}

/** Runs [first, last] of spans covering `ranges`, in order, up to `maxBytes` uncompressed (0 = all). */
export function spanRuns(t: Parameters<typeof spanAt>[0], ranges: readonly ByteRange[], maxBytes: number): Array<[number, number]> {
  const spans = new Set<number>();
  let bytes = 0;
  const spanLen = (i: number): number => spanEnd(t, i) - (t.points[i]?.out ?? 0);
  for (const [start, end] of ranges) {
    const s = Math.max(0, start);
    const e = Math.min(end, t.uncompressedSize);
    if (e <= s) continue;
    for (let i = spanAt(t, s); i <= spanAt(t, e - 1); i++) {
      if (spans.has(i)) continue;
      if (maxBytes > 0 && bytes + spanLen(i) > maxBytes) return toRuns(spans);
      spans.add(i);
      bytes += spanLen(i);
    }
  }
  return toRuns(spans);
}

function toRuns(spans: Set<number>): Array<[number, number]> {
  const sorted = [...spans].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const i of sorted) {
    const last = runs[runs.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  return runs;
}

/** The diffID's hex: how the ledger names a layer. */
function diffHex(ref: LayerRef): string {
  return ref.diffId.slice(ref.diffId.indexOf(':') + 1);
}
