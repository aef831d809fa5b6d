/**
 * The layer read path, one per daemon: disk cache → ContentCache → range reads → registry, with
 * one download per layer at a time (single flight) and reads served as soon as their range is on
 * disk. It coordinates the tiers and pins layers while something holds them; publishing
 * (`layer-publisher.ts`) and eviction (`disk-eviction.ts`) are modules of their own.
 *
 * A layer's state lives in `#layers` only while something holds it: an open reader (a mount), a
 * download, a publish, or a disk-cache verification; a layer with no state is evictable.
 */
import { rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ContentCache } from '../contentcache/index.js';
import type { SpanBounds } from '../zran/index.js';
import { ClipError, dataCorrupt, failedPrecondition, findClipError, invalidArgument, messageOf, unavailable } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import type { Clock } from '../util/clock.js';
import {
  ATTR_CLIP_CONTENT_CACHE_BACKEND, ATTR_CLIP_DOWNLOAD_JOINED, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_LAYER_SIZE,
  ATTR_CLIP_UNSAMPLED_BYTES, ATTR_CLIP_UNSAMPLED_READS, DiskSpanSampler, SPAN_DISK_VERIFY, SPAN_READ,
  activeRecordingSpan, observeContentCache, recordRead, recordSplicedRead, recordVerificationFailure, tracingEnabled, withSpan, type SkippedDiskReads,
} from '../telemetry/index.js';
import type { SpanContext } from '@opentelemetry/api';
import type { BlobSource } from './blob-source.js';
import { ContentCacheTier, type ContentCachePolicy } from './content-cache-tier.js';
import { CachedLayerCheck } from './cached-layer-check.js';
import { DiskCache } from './disk-cache.js';
import { DiskEviction } from './disk-eviction.js';
import { ExtractedLayers } from './extracted-layers.js';
import { LayerPublisher } from './layer-publisher.js';
import { ReadActivity, type ReadActivityOptions } from './read-activity.js';
import { preadFull } from './file-io.js';
import { readCachedNow } from '../util/page-cache-read.js';
import { LayerDownload } from './layer-download.js';
import { LayerLedger } from './layer-ledger.js';
import { layerStateKey } from './layer-key.js';
import { QuarantineList } from './quarantine-list.js';
import { RangeTier, type ByteRange, type RangeTierOptions } from './range-tier.js';
import { FetchAhead, type FetchAheadOptions } from './fetch-ahead.js';
import { isAuthRefusal } from '../registry/index.js';
import type { DiskRange, LayerReader, LayerRef, ReadSource } from './layer-reader.js';
import { StoreLayerReader, type LayerReaderHost } from './store-layer-reader.js';
import { readSpanAttrs, traceRangeTier, traceTier } from './read-tracing.js';

export interface LayerStoreOptions {
  /** `<root>/cache/layers`. */
  cacheDir: string;
  /** Disk cache limit; 0 = unlimited. */
  maxSizeBytes?: number;
  blobs: BlobSource;
  /** Required on purpose: pass `NoContentCache` explicitly to run without cluster sharing. */
  contentCache: ContentCache;
  log?: Logger;
  /** What a ContentCache failure means for a read: fall through to the registry, or fail it. */
  onContentCacheUnavailable?: ContentCachePolicy;
  /** A read that needs the registry fails `unavailable` after this long. */
  readTimeoutMs?: number;
  /** A download attempt with no progress for this long is aborted and retried. */
  stallTimeoutMs?: number;
  /** Download retries after the first attempt. */
  maxRetries?: number;
  retryBaseDelayMs?: number;
  /** Bound on the registry HEAD of `check`. */
  checkTimeoutMs?: number;
  /** Hash a cached layer against its diffID the first time this process uses it. */
  verifyCachedLayers?: boolean;
  /** A pure disk-hit read gets its own span at most once per layer per this interval (telemetry/README.md). */
  diskSpanIntervalMs?: number;
  /**
   * Serve misses on gzip layers whose LayerRef carries checkpoints from HTTP Range requests into a
   * sparse file (range-tier.ts) before falling back to the whole-layer download. Default false.
   */
  rangeReads?: boolean;
  /** Where sparse layers live; default `<dirname(cacheDir)>/sparse-layers`. */
  sparseDir?: string;
  /**
   * After a layer's first range read, fetch its remaining spans in the background at this many
   * compressed bytes per second (pausing for on-demand reads), then adopt it as a complete cache
   * entry (diffID-verified, published). 0 (default) = no background completion.
   */
  rangeCompletionBytesPerSec?: number;
  /** Background completion starts after no on-demand range fetch for this long. Default 2000. */
  rangeCompletionIdleMs?: number;
  /**
   * How far past its own spans a read that misses to the registry fetches in the same request,
   * sized from the link's measured rate (fetch-ahead.ts). Default none: only the read's spans.
   */
  rangeFetchAhead?: FetchAheadOptions;
  /** How decoded spans wait to be offered to the ContentCache until on-demand fetches pause (defaults in `span-offer-queue.ts`). */
  spanOffers?: RangeTierOptions['spanOffers'];
  /** Time for the range tier's idle wait, completion rate and cool-downs; tests inject one. */
  clock?: Clock;
  /** Where completed layers are extracted to ordinary directories; default `<dirname(cacheDir)>/extracted`. */
  extractDir?: string;
  /** Deadline of one Range request of a prefetch or a background completion batch (default 120 s). */
  backgroundRequestTimeoutMs?: number;
  /** How long a layer whose range read failed transiently (e.g. its deadline) uses the whole-layer path (default 30 s). */
  rangeRetryAfterMs?: number;
  /** Where quarantined layers are remembered across restarts; default memory only. */
  quarantine?: QuarantineList;
  /** Largest span a range-read layer's table may have (`[index] max_span_*`; default `DEFAULT_SPAN_BOUNDS`). */
  spanBounds?: SpanBounds;
  /**
   * How background completion, publishing and extraction yield to FUSE requests (`[reads]
   * background_*`, defaults in `read-activity.ts`); the FUSE mounts report to `readActivity`.
   */
  background?: ReadActivityOptions;
}

interface LayerState {
  ref: LayerRef;
  /** `layerStateKey(ref)`: names this state, its sparse file and its reader (layer-key.ts). */
  key: string;
  /** The diffID's hex: names the disk-cache file (verified to hash to it) and the ledger entry. */
  hex: string;
  /** Set when the layer's bytes failed their diffID: every read fails with it. */
  quarantined?: ClipError;
  refs: number;
  /** The verified complete layer, open for positional reads. */
  file?: FileHandle;
  /** Opening (and verifying) the disk-cache file. */
  opening?: Promise<FileHandle | undefined>;
  download?: LayerDownload;
  publishing?: Promise<void>;
}

const DIFF_ID = /^sha256:([0-9a-f]{64})$/;

/** The read path over every layer this daemon serves. */
export class LayerStore implements LayerReaderHost {
  readonly #o: Required<Omit<LayerStoreOptions, 'log' | 'diskSpanIntervalMs' | 'sparseDir' | 'rangeCompletionBytesPerSec' | 'rangeCompletionIdleMs' | 'rangeFetchAhead' | 'clock' | 'backgroundRequestTimeoutMs' | 'rangeRetryAfterMs' | 'extractDir' | 'quarantine' | 'spanBounds' | 'spanOffers' | 'background'>>;
  readonly #range: RangeTier;
  readonly #diskSpans: DiskSpanSampler;
  readonly #log: Logger;
  readonly #disk: DiskCache;
  /** By `layerStateKey`, never by the diffID alone: images that merely claim a diffID share nothing. */
  readonly #layers = new Map<string, LayerState>();
  /** Layers (by state key) whose blob did not produce their diffID: their errors, loaded lazily from `#list`. */
  readonly #quarantined = new Map<string, ClipError>();
  /** The persisted quarantine (survives restarts). */
  readonly #list: QuarantineList;
  #started = false;
  /** The one way to the ContentCache: reads, checks, span sharing and publishing share its breaker. */
  readonly #cc: ContentCacheTier;
  readonly #publisher: LayerPublisher;
  readonly #eviction: DiskEviction;
  /** Size and sha256 of a cached file before its first read in this process. */
  readonly #check: CachedLayerCheck;
  /** How each layer's bytes reached this node and its readers (status, per-layer metrics). */
  readonly ledger = new LayerLedger();
  /** FUSE requests in, background batches (completion, publish, extraction) held back while they run. */
  readonly readActivity: ReadActivity;
  /** Completed layers extracted to ordinary directories (counted in the size limit). */
  readonly extracted: ExtractedLayers;
  readonly #completeListeners = new Set<(hex: string) => void>();

  constructor(opts: LayerStoreOptions) {
    if (opts.contentCache === undefined || opts.contentCache === null) {
      throw invalidArgument('CLIP_STORAGE_BAD_OPTIONS', 'LayerStore needs a contentCache (pass NoContentCache to run without one)');
    }
    if (!opts.blobs) throw invalidArgument('CLIP_STORAGE_BAD_OPTIONS', 'LayerStore needs a blob source');
    this.#log = opts.log ?? silentLogger();
    this.#list = opts.quarantine ?? QuarantineList.memory({ log: this.#log });
    const readTimeoutMs = opts.readTimeoutMs ?? 30_000;
    this.#o = {
      cacheDir: opts.cacheDir,
      maxSizeBytes: opts.maxSizeBytes ?? 0,
      blobs: opts.blobs,
      contentCache: opts.contentCache,
      onContentCacheUnavailable: opts.onContentCacheUnavailable ?? 'registry',
      readTimeoutMs,
      stallTimeoutMs: opts.stallTimeoutMs ?? readTimeoutMs,
      maxRetries: opts.maxRetries ?? 3,
      retryBaseDelayMs: opts.retryBaseDelayMs ?? 500,
      checkTimeoutMs: opts.checkTimeoutMs ?? 10_000,
      verifyCachedLayers: opts.verifyCachedLayers ?? true,
      rangeReads: opts.rangeReads ?? false,
    };
    this.#cc = new ContentCacheTier(observeContentCache(opts.contentCache), this.#o.onContentCacheUnavailable, this.#log);
    this.readActivity = new ReadActivity(opts.background);
    this.#publisher = new LayerPublisher(this.#cc, () => this.readActivity.pass('publish'));
    this.#range = new RangeTier({
      dir: opts.sparseDir ?? join(dirname(opts.cacheDir), 'sparse-layers'), blobs: opts.blobs, log: this.#log,
      completionBytesPerSec: opts.rangeCompletionBytesPerSec ?? 0, completionIdleMs: opts.rangeCompletionIdleMs ?? 2_000,
      contentCache: this.#cc,
      ledger: this.ledger,
      adopt: (ref, path) => this.adopt(ref, path),
      clock: opts.clock,
      backgroundRequestTimeoutMs: opts.backgroundRequestTimeoutMs,
      transientCooldownMs: opts.rangeRetryAfterMs,
      quarantine: (key, ref, err) => this.#quarantine(key, ref, err),
      spanBounds: opts.spanBounds,
      fetchAhead: opts.rangeFetchAhead && opts.rangeFetchAhead.maxBytes > 0 ? new FetchAhead(opts.rangeFetchAhead) : undefined,
      spanOffers: opts.spanOffers,
      activity: this.readActivity,
      fillYields: opts.background?.fillYields,
    });
    this.#disk = new DiskCache(opts.cacheDir, this.#log);
    this.#check = new CachedLayerCheck(this.#disk, this.#o.verifyCachedLayers, this.#log);
    this.extracted = new ExtractedLayers(opts.extractDir ?? join(dirname(opts.cacheDir), 'extracted'), this.#log, () => this.readActivity.pass('extract'));
    this.#eviction = new DiskEviction({
      maxSizeBytes: this.#o.maxSizeBytes, disk: this.#disk, sparse: this.#range, extracted: this.extracted, log: this.#log,
      // Sparse files are named by state key, complete layers by diffID hex.
      held: (name) => this.#layers.has(name) || [...this.#layers.values()].some((st) => st.hex === name),
      removing: (hex) => this.#check.forget(hex),
    });
    this.#diskSpans = new DiskSpanSampler(opts.diskSpanIntervalMs);
  }

  /** Construct and start. */
  static async create(opts: LayerStoreOptions): Promise<LayerStore> {
    const store = new LayerStore(opts);
    await store.start();
    return store;
  }

  /** The ContentCache reads fall back to and downloads are published to. */
  get contentCache(): ContentCache {
    return this.#o.contentCache;
  }

  /** Bytes of complete layers in the disk cache. */
  get diskBytes(): number {
    return this.#disk.totalBytes;
  }

  /** Clean up after a crash (delete `.partial` files) and index the disk cache. */
  async start(): Promise<void> {
    await this.#disk.start();
    await this.extracted.start();
    this.#started = true;
    this.#scheduleEviction();
  }

  /** A reader for one layer; the layer is pinned (never evicted) until every reader is closed. */
  open(ref: LayerRef): LayerReader {
    const st = this.#pin(ref, 'open');
    this.ledger.opened(ref, st.file !== undefined || this.#disk.sizeOf(st.hex) === ref.uncompressedSize);
    return new StoreLayerReader(ref, st.key, this);
  }

  /** Pin a layer for a reader (`releaseLayer` unpins it); a quarantined layer throws its error instead. */
  #pin(ref: LayerRef, caller: string): LayerState {
    if (!this.#started) throw failedPrecondition('CLIP_STORAGE_NOT_STARTED', `LayerStore.${caller} before start()`);
    const hex = hexOf(ref.diffId);
    const key = layerStateKey(ref);
    const quarantined = this.#quarantinedError(key, ref);
    if (quarantined) throw quarantined;
    let st = this.#layers.get(key);
    if (!st) {
      st = { ref, refs: 0, key, hex };
      this.#layers.set(key, st);
    }
    st.refs++;
    return st;
  }

  /**
   * Call `listener` with the diffID hex of every layer that becomes complete on disk (a download
   * or a background completion verified against its diffID, or an adopted file). Returns the
   * unsubscribe.
   */
  onLayerComplete(listener: (hex: string) => void): () => void {
    this.#completeListeners.add(listener);
    return () => this.#completeListeners.delete(listener);
  }

  #completed(hex: string): void {
    for (const l of this.#completeListeners) {
      try {
        l(hex);
      } catch (err) {
        this.#log.warn({ diff_id: `sha256:${hex}`, err: messageOf(err) }, 'layer-complete listener failed');
      }
    }
  }

  /** Whether a layer can be read now: on disk, in the ContentCache, or HEAD-able in the registry. */
  async checkLayer(ref: LayerRef): Promise<void> {
    const hex = hexOf(ref.diffId);
    const key = layerStateKey(ref);
    const quarantined = this.#quarantinedError(key, ref);
    if (quarantined) throw quarantined;
    if (this.#layers.get(key)?.file || this.#disk.sizeOf(hex) === ref.uncompressedSize) return;
    if (await this.#cc.has(ref)) return;
    let cause: unknown;
    try {
      if (await this.#o.blobs.exists(ref, AbortSignal.timeout(this.#o.checkTimeoutMs))) return;
    } catch (err) {
      // Refused credentials keep their code: the cause is the registry's answer, not an outage.
      if (isAuthRefusal(err)) throw err;
      cause = err;
    }
    throw unavailable('CLIP_LAYER_UNAVAILABLE', `layer ${ref.digest} (${ref.diffId}) is not on disk, in the content cache or in ${ref.ref}`, cause);
  }

  /**
   * What this node holds of a layer right now: uncompressed bytes on disk (complete file, range-read
   * spans, or a running download's prefix), whether it is complete, and whether something is
   * fetching the rest (background completion or a whole-layer download).
   */
  async presence(ref: LayerRef): Promise<{ presentBytes: number; complete: boolean; completing: boolean }> {
    const hex = hexOf(ref.diffId);
    const key = layerStateKey(ref);
    const st = this.#layers.get(key);
    if (st?.file || this.#disk.sizeOf(hex) === ref.uncompressedSize) return { presentBytes: ref.uncompressedSize, complete: true, completing: false };
    const range = await this.#range.presence(key);
    const download = st?.download && !st.download.failed ? st.download : undefined;
    return {
      presentBytes: Math.max(range.presentBytes, download?.bytesOnDisk ?? 0),
      complete: false,
      completing: range.completing || download !== undefined,
    };
  }

  /** The three-tier read; see LayerReader.read. */
  async readLayer(key: string, buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    const st = this.#layers.get(key);
    if (!st) throw failedPrecondition('CLIP_STORAGE_NOT_STARTED', `layer ${key} is not open`);
    if (st.quarantined) throw st.quarantined;
    const hex = st.hex;
    if (offset < 0 || length < 0 || bufOffset < 0 || bufOffset + length > buf.length) {
      throw invalidArgument('CLIP_LAYER_BAD_RANGE', `read of ${length} bytes at ${offset} into a ${buf.length}-byte buffer at ${bufOffset}`);
    }
    const len = Math.min(length, st.ref.uncompressedSize - offset);
    if (len <= 0) return 0;
    // The hot path: a cached layer read outside any trace costs a pread and three metric updates.
    let skipped: SkippedDiskReads | undefined;
    if (st.file && (!tracingEnabled() || (!activeRecordingSpan() && (skipped = this.#diskSpans.take(key)) === undefined))) {
      const n = await this.#readDiskUntraced(hex, st.file, buf, bufOffset, len, offset);
      if (tracingEnabled()) this.#diskSpans.skip(key, n);
      return n;
    }
    if (!tracingEnabled()) return this.#readTiers(st, buf, bufOffset, len, offset);
    const attrs = {
      ...readSpanAttrs(st.ref, offset, len),
      ...(skipped ? { [ATTR_CLIP_UNSAMPLED_READS]: skipped.reads, [ATTR_CLIP_UNSAMPLED_BYTES]: skipped.bytes } : {}),
    };
    return withSpan(SPAN_READ, attrs, () => this.#readTiers(st, buf, bufOffset, len, offset));
  }

  /**
   * The part of a read a complete cached layer serves from the page cache at once, on this thread
   * (see LayerReader.readNow): 0 whenever the read must take `readLayer` — not complete on disk,
   * quarantined, inside a recording span, or due for its sampled disk-hit span.
   */
  readLayerNow(key: string, buf: Buffer, bufOffset: number, length: number, offset: number): number {
    if (bufOffset < 0 || bufOffset + length > buf.length) return 0;
    const st = this.#servedAtOnce(key, offset, length);
    if (st === undefined) return 0;
    const started = performance.now();
    const n = readCachedNow((st.file as FileHandle).fd, buf, bufOffset, Math.min(length, st.ref.uncompressedSize - offset), offset);
    if (n > 0) this.#diskServed(st, n, started);
    return n;
  }

  /** Where a complete cached layer's bytes lie on disk (see LayerReader.diskRange); the same conditions as `readLayerNow`. */
  diskRangeOf(key: string, offset: number, length: number): DiskRange | undefined {
    const sparse = this.#sparseRangeOf(key, offset, length);
    if (sparse) return sparse;
    const st = this.#servedAtOnce(key, offset, length);
    if (st === undefined || offset + length > st.ref.uncompressedSize) return undefined;
    const started = performance.now();
    return {
      fd: (st.file as FileHandle).fd, position: offset,
      served: (n) => {
        recordSplicedRead();
        this.#diskServed(st, n, started);
      },
    };
  }

  /**
   * A lazy layer's bytes in its sparse file, when every span they touch is verified there: the
   * same disk-tier read `readPresent` serves, without the copy through this thread. Not while a
   * read would be traced (the traced path shows the tiers).
   */
  #sparseRangeOf(key: string, offset: number, length: number): DiskRange | undefined {
    const st = this.#layers.get(key);
    if (!st || st.file || st.quarantined || !this.#o.rangeReads || offset < 0 || length <= 0) return undefined;
    if (tracingEnabled() && activeRecordingSpan()) return undefined;
    const r = this.#range.diskRange(key, offset, length);
    if (!r) return undefined;
    const started = performance.now();
    return {
      fd: r.fd, position: r.position,
      served: (n) => {
        recordRead('disk', n, (performance.now() - started) / 1000);
        recordSplicedRead();
        this.ledger.read(st.hex, 'disk', n);
      },
    };
  }

  #servedAtOnce(key: string, offset: number, length: number): LayerState | undefined {
    const st = this.#layers.get(key);
    if (!st?.file || st.quarantined || offset < 0 || length <= 0 || offset >= st.ref.uncompressedSize) return undefined;
    if (tracingEnabled() && (activeRecordingSpan() || this.#diskSpans.due(key))) return undefined;
    return st;
  }

  #diskServed(st: LayerState, n: number, started: number): void {
    this.#disk.touch(st.hex);
    recordRead('disk', n, (performance.now() - started) / 1000);
    this.ledger.read(st.hex, 'disk', n);
    if (tracingEnabled()) this.#diskSpans.skip(st.key, n);
  }

  async #readDiskUntraced(hex: string, file: FileHandle, buf: Buffer, bufOffset: number, len: number, offset: number): Promise<number> {
    const started = performance.now();
    this.#disk.touch(hex);
    const n = await preadFull(file, buf, bufOffset, len, offset);
    recordRead('disk', n, (performance.now() - started) / 1000);
    this.ledger.read(hex, 'disk', n);
    return n;
  }

  /**
   * Disk → (a running download) → ContentCache → registry, one tier span each when traced. One
   * deadline (`readTimeoutMs`) covers every wait of the read, whichever tiers it tries: a tier that
   * used it up leaves nothing to the next, and the read fails `CLIP_LAYER_READ_TIMEOUT` (EIO).
   */
  async #readTiers(st: LayerState, buf: Buffer, bufOffset: number, len: number, offset: number): Promise<number> {
    const { hex, key } = st;
    // Made when a tier that waits is reached, counting from the read's start: reads served from disk
    // or the ContentCache (a warm node's every read) need no timer.
    const started = performance.now();
    let signal: AbortSignal | undefined;
    const deadline = (): AbortSignal => {
      if (signal) return signal;
      const left = Math.ceil(this.#o.readTimeoutMs - (performance.now() - started));
      // Already spent (a slow ContentCache): aborted now, as a signal made at the start would be.
      signal = left > 0 ? AbortSignal.timeout(left) : AbortSignal.abort(new DOMException('read deadline passed', 'TimeoutError'));
      return signal;
    };
    const served = (source: ReadSource, n: number | undefined): void => {
      if (n !== undefined) this.ledger.read(hex, source, n);
    };
    const disk = await traceTier('disk', st.ref, offset, len, async () => {
      const file = st.file ?? (await this.#openCached(hex, st));
      // Not a complete layer yet: spans this node already range-read are on disk too.
      if (!file) return this.#range.readPresent(key, buf, bufOffset, len, offset);
      this.#disk.touch(hex);
      return preadFull(file, buf, bufOffset, len, offset);
    });
    served('disk', disk);
    if (disk !== undefined) return disk;
    const running = st.download;
    if (running && !running.failed && running.bytesOnDisk >= offset + len) {
      // Bytes the registry already delivered to a running download: still the registry tier.
      const joinedRead = await traceTier('registry', st.ref, offset, len, () => {
        const d = deadline();
        return this.#timed(st, offset, len, d, running.read(buf, bufOffset, len, offset, d));
      }, {
        [ATTR_CLIP_DOWNLOAD_JOINED]: true,
      });
      served('registry', joinedRead);
      return joinedRead;
    }
    const cc = { [ATTR_CLIP_CONTENT_CACHE_BACKEND]: this.#o.contentCache.name };
    const hit = await traceTier('content_cache', st.ref, offset, len, () => this.#cc.read(st.ref, buf, bufOffset, len, offset), cc);
    served('content_cache', hit);
    if (hit !== undefined) return hit;
    if (this.#o.rangeReads && !st.download && this.#range.usable(key, st.ref)) {
      const ranged = await traceRangeTier(st.ref, offset, len, () => this.#range.read(key, st.ref, buf, bufOffset, len, offset, deadline()), served);
      if (ranged !== undefined) return ranged;
    }
    const joined = { [ATTR_CLIP_DOWNLOAD_JOINED]: st.download !== undefined && !st.download.failed };
    const fromRegistry = await traceTier('registry', st.ref, offset, len, () => this.#readRegistry(st, buf, bufOffset, len, offset, deadline()), joined);
    served('registry', fromRegistry);
    return fromRegistry;
  }

  /**
   * Fetch ahead the parts of a layer a container is expected to read (a start profile's ranges),
   * when the layer is neither on disk, downloading nor in the ContentCache (reads will be served
   * from there without the registry) and can be range-read. Resolves to compressed bytes fetched
   * (0 when there was nothing to do); never rejects.
   */
  async prefetch(ref: LayerRef, ranges: readonly ByteRange[], maxBytes: number, signal: AbortSignal): Promise<number> {
    const hex = hexOf(ref.diffId);
    const key = layerStateKey(ref);
    const st = this.#layers.get(key);
    if (this.#quarantinedError(key, ref)) return 0;
    if (!this.#o.rangeReads || st?.file || st?.download || this.#disk.sizeOf(hex) !== undefined || !this.#range.usable(key, ref)) return 0;
    if (await this.#cc.has(ref)) return 0;
    const fetched = await this.#range.prefetch(key, ref, ranges, maxBytes, signal);
    this.#scheduleEviction();
    return fetched;
  }

  /**
   * Positional reads of a complete layer's disk-cache file for a bulk copy (extraction): checked
   * against its diffID like any first use in this process, the layer pinned until `close`, and not
   * counted as container reads in the ledger. Undefined when the layer is not complete on disk.
   */
  async openComplete(ref: LayerRef): Promise<{ read: (buf: Buffer, bufOffset: number, length: number, offset: number) => Promise<number>; close(): void } | undefined> {
    const st = this.#pin(ref, 'openComplete');
    const { hex, key } = st;
    let file: FileHandle | undefined;
    try {
      file = st.file ?? (await this.#openCached(hex, st));
    } catch (err) {
      this.releaseLayer(key);
      throw err;
    }
    if (!file) {
      this.releaseLayer(key);
      return undefined;
    }
    const fh = file;
    let closed = false;
    return {
      read: (buf, bufOffset, length, offset) => preadFull(fh, buf, bufOffset, Math.max(0, Math.min(length, ref.uncompressedSize - offset)), offset),
      close: () => {
        if (closed) return;
        closed = true;
        this.releaseLayer(key);
      },
    };
  }

  releaseLayer(key: string): void {
    const st = this.#layers.get(key);
    if (!st) return;
    st.refs--;
    if (st.refs <= 0) this.#diskSpans.forget(key);
    this.#dropIfIdle(st);
  }

  /** Wait for running downloads and publishes (shutdown, tests). */
  async drain(): Promise<void> {
    await this.#range.drain();
    const busy = [...this.#layers.values()].flatMap((st) => [st.download?.result.catch(() => {}), st.publishing]);
    await Promise.all(busy);
    await this.#eviction.idle;
  }

  /** Resolves once every decoded span queued for the ContentCache is offered or dropped (tests). */
  spanOffersSettled(): Promise<void> {
    return this.#range.spanOffersSettled();
  }

  /** Abort downloads, wait for publishes, close every file. */
  async close(): Promise<void> {
    for (const st of this.#layers.values()) st.download?.abort();
    this.#range.stop();
    await this.drain();
    for (const st of this.#layers.values()) await st.file?.close().catch(() => {});
    await this.#range.close();
    await this.#list.flush();
    this.#layers.clear();
    this.#started = false;
  }

  /** Open the disk-cache file once per process: size check always, sha256 unless disabled. */
  #openCached(hex: string, st: LayerState): Promise<FileHandle | undefined> | undefined {
    if (st.opening) return st.opening;
    if (this.#disk.sizeOf(hex) === undefined) return undefined;
    const attrs = { [ATTR_CLIP_LAYER_DIGEST]: st.ref.digest, [ATTR_CLIP_LAYER_DIFF_ID]: st.ref.diffId, [ATTR_CLIP_LAYER_SIZE]: st.ref.uncompressedSize };
    st.opening = withSpan(SPAN_DISK_VERIFY, attrs, () => this.#check.open(hex, st.ref)).finally(() => (st.opening = undefined));
    return st.opening.then((fh) => {
      if (fh && !st.file) st.file = fh;
      return st.file;
    });
  }

  /**
   * Wait for a download to bring the range. A download is started even when the read's deadline
   * already passed (spent on the range tier): the layer must keep working once its registry recovers.
   */
  #readRegistry(st: LayerState, buf: Buffer, bufOffset: number, len: number, offset: number, deadline: AbortSignal): Promise<number> {
    const download = st.download && !st.download.failed ? st.download : this.#startDownload(st);
    return this.#timed(st, offset, len, deadline, download.read(buf, bufOffset, len, offset, deadline));
  }

  /** A wait on a download, its failures typed: the deadline's end is `CLIP_LAYER_READ_TIMEOUT`. */
  async #timed(st: LayerState, offset: number, len: number, deadline: AbortSignal, read: Promise<number>): Promise<number> {
    try {
      return await read;
    } catch (err) {
      if (err instanceof ClipError) throw err;
      if (deadline.aborted) {
        throw unavailable('CLIP_LAYER_READ_TIMEOUT', `layer ${st.ref.diffId}: bytes ${offset}+${len} not available within ${this.#o.readTimeoutMs} ms`, err);
      }
      throw unavailable('CLIP_LAYER_FETCH_FAILED', `layer ${st.ref.diffId}: ${messageOf(err)}`, err);
    }
  }

  /**
   * Take into the cache a complete layer another component already downloaded and verified
   * (the index builder hashes exactly these bytes into the diffID): it is renamed into place, so
   * the first read needs no second download. A layer already cached or downloading wins.
   */
  async adopt(ref: LayerRef, tmpPath: string): Promise<void> {
    const hex = DIFF_ID.exec(ref.diffId)?.[1];
    const size = (await stat(tmpPath)).size;
    const downloading = [...this.#layers.values()].some((s) => s.hex === hex && s.download !== undefined);
    if (!hex || size !== ref.uncompressedSize || this.#disk.sizeOf(hex) !== undefined || downloading) {
      await rm(tmpPath, { force: true });
      return;
    }
    const path = this.#disk.pathOf(hex);
    await rename(tmpPath, path);
    this.#disk.add(hex, size);
    this.#check.trust(hex);
    const key = layerStateKey(ref);
    let st = this.#layers.get(key);
    if (!st) {
      st = { ref, refs: 0, key, hex };
      this.#layers.set(key, st);
    }
    // Published like a downloaded layer: the node that indexed a layer shares it with the cluster.
    this.#publish(st, path, size, undefined);
    this.#scheduleEviction();
    this.#completed(hex);
  }

  #startDownload(st: LayerState): LayerDownload {
    const o = this.#o;
    const { hex, key } = st;
    const download = new LayerDownload({
      ref: st.ref, hex, cacheDir: o.cacheDir, blobs: o.blobs, log: this.#log,
      maxRetries: o.maxRetries, retryBaseDelayMs: o.retryBaseDelayMs, stallTimeoutMs: o.stallTimeoutMs,
      onFetched: (bytes) => this.ledger.fetched(hex, 'whole', bytes),
    });
    st.download = download;
    // The read that started the download: the ContentCache publish links back to it.
    const trigger = activeRecordingSpan()?.spanContext();
    download.result.then(
      (done) => {
        if (st.download === download) st.download = undefined;
        st.file = done.file;
        void this.#range.completed(key);
        this.#disk.add(hex, done.size);
        this.#check.trust(hex);
        this.#publish(st, done.path, done.size, trigger);
        this.#scheduleEviction();
        this.#completed(hex);
      },
      (err: unknown) => {
        if (st.download === download) st.download = undefined;
        // The registry client verified the blob's digest while streaming: a blob that does not
        // inflate to its diffID never will, and its prefix was already served.
        if (o.blobs.verifiesDigest === true && findClipError(err)?.code === 'CLIP_LAYER_DIFF_ID_MISMATCH') this.#quarantine(key, st.ref, err);
        this.#dropIfIdle(st);
      },
    );
    return download;
  }

  /** Background: never awaited by a read; the layer stays pinned while it runs. */
  #publish(st: LayerState, path: string, size: number, trigger: SpanContext | undefined): void {
    st.publishing = this.#publisher.publish(st.ref, path, size, trigger)?.finally(() => {
      st.publishing = undefined;
      this.#dropIfIdle(st);
    });
  }

  #dropIfIdle(st: LayerState): void {
    const { key } = st;
    if (st.refs > 0 || st.download || st.publishing || st.opening || this.#layers.get(key) !== st) return;
    this.#layers.delete(key);
    st.file?.close().catch(() => {});
    // After the sparse file is closed, so eviction may take it too.
    void this.#range.release(key).finally(() => this.#scheduleEviction());
  }

  /**
   * A layer whose blob does not produce its diffID (a download or background completion hashed
   * it): its spans and prefix were served on the index's word, so from now on every read of it
   * fails, new mounts refuse it, and its sparse file is deleted. Persisted in the quarantine list,
   * so a restarted daemon refuses it too.
   */
  #quarantine(key: string, ref: LayerRef, cause: unknown): void {
    if (this.#quarantinedError(key, ref)) return;
    const err = dataCorrupt('CLIP_LAYER_QUARANTINED', `layer ${ref.digest} does not produce its diffID ${ref.diffId}: quarantined`, cause);
    this.#quarantined.set(key, err);
    const st = this.#layers.get(key);
    if (st) st.quarantined = err;
    recordVerificationFailure('layer', 'diff_id');
    this.#list.add({ kind: 'layer', key, layer: ref.digest, diffId: ref.diffId, code: findClipError(cause)?.code ?? 'CLIP_LAYER_DIFF_ID_MISMATCH', reason: messageOf(cause) });
    this.#log.error(
      { layer: ref.digest, diff_id: ref.diffId, code: err.code, err: messageOf(cause) },
      'layer quarantined: its blob does not produce its diffID; reads fail and new mounts refuse it',
    );
    void this.#range.quarantine(key);
  }

  /** Whether a layer (as this ref names it) is quarantined (status, tests). */
  isQuarantined(ref: LayerRef): boolean {
    const key = layerStateKey(ref);
    return this.#quarantinedError(key, ref) !== undefined;
  }

  /** The error a quarantined layer is refused with; one found in the persisted list is named as such. */
  #quarantinedError(key: string, ref: LayerRef): ClipError | undefined {
    const known = this.#quarantined.get(key);
    if (known) return known;
    const e = this.#list.get('layer', key);
    if (!e) return undefined;
    const err = dataCorrupt('CLIP_LAYER_QUARANTINED', `layer ${ref.digest} (${ref.diffId}) was quarantined at ${e.at}: ${e.code} ${e.reason}`);
    this.#quarantined.set(key, err);
    return err;
  }

  #scheduleEviction(): void {
    this.#eviction.schedule();
  }
}

function hexOf(diffId: string): string {
  const m = DIFF_ID.exec(diffId);
  if (!m?.[1]) throw invalidArgument('CLIP_STORAGE_BAD_OPTIONS', `diffID ${diffId} is not sha256:<64 hex>`);
  return m[1];
}
