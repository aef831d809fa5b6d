/**
 * Random access into one compressed layer through its span table (gzip checkpoints or zstd
 * frames, behind a `SpanCodec`): a read decodes only the spans it touches, fetched with one HTTP
 * Range request per run of adjacent missing spans, verifies each span's sha256, and keeps it in a
 * sparse per-layer file (`<path>`) with a one-byte-per-span record of what is present
 * (`<path>.spans`). Concurrent misses on a span share one fetch.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import type { FetchAhead } from './fetch-ahead.js';
import { ClipError, dataCorrupt, findClipError, isKind, messageOf, unavailable } from '../errors/index.js';
import { raceAbort } from '../util/abortable.js';
import { silentLogger, type Logger } from '../log/index.js';
import { systemClock, type Clock } from '../util/clock.js';
import {
  gzipSpanCodec, loadZran, spanAt, spanEnd, type DecodeContext, type GzipCheckpointTable, type SpanCodec, type SpanTable,
} from '../zran/index.js';

/** Fetch compressed bytes [start, end) of the blob; must return exactly that many bytes. */
export type RangeFetcher = (start: number, end: number, signal: AbortSignal) => Promise<Buffer>;

export interface SparseLayerOptions {
  codec: SpanCodec;
  /** Sparse cache file; `<path>.spans` records which spans it holds. */
  path: string;
  fetchRange: RangeFetcher;
  /** Adjacent missing spans are fetched together up to this many compressed bytes. */
  maxFetchBytes?: number;
  /** Where other nodes' decoded spans may be found, and this node's are offered (the ContentCache). */
  share?: SpanShare | undefined;
  log?: Logger;
  /**
   * Sequential readers get the spans ahead of them fetched in the background, in one request per
   * window, the window doubling up to this many uncompressed bytes (0 = no readahead; default 32 MiB).
   */
  readaheadMaxBytes?: number;
  /** Deadline of one readahead fetch, which no reader waits for; default 120 s. */
  readaheadTimeoutMs?: number;
  /**
   * A read that misses to the registry also fetches the absent spans right after its own, in the
   * same request, as far as this allows (`fetch-ahead.ts`); absent = only the read's own spans.
   */
  fetchAhead?: FetchAhead | undefined;
}

/** First readahead window, and how far a read may start from where the last ended and still count as sequential. */
const READAHEAD_MIN_BYTES = 1024 * 1024;
const SEQUENTIAL_SLACK_BYTES = 128 * 1024;
/**
 * Bytes a stream must have read in order before anything is read ahead: a run of small files
 * next to each other in the tar (a container start) fetches nothing it did not ask for.
 */
const READAHEAD_AFTER_BYTES = 512 * 1024;

/**
 * Decoded spans shared between nodes: a span another node already fetched and decoded costs no
 * registry request. What `get` returns is checked against the span's sha256 like registry bytes.
 */
export interface SpanShare {
  /** The span's uncompressed bytes, or undefined (absent or the share is unreachable). */
  get(i: number, signal: AbortSignal): Promise<Buffer | undefined>;
  /**
   * Offer a verified span (background, best effort). `reload` reads it again from the sparse
   * file, checked against its sha256, for an offer published later without holding `data`.
   */
  put(i: number, data: Buffer, reload: () => Promise<Buffer | undefined>): void;
}

/** Present state of a span: absent, on disk from an earlier run (hash on first use), verified. */
const ABSENT = 0;
const ON_DISK = 1;
const VERIFIED = 2;

/** `SparseLayer.open` over a gzip checkpoint table (needs the clip_zran addon). */
export type SparseGzipLayerOptions = Omit<SparseLayerOptions, 'codec'> & { table: GzipCheckpointTable };

/** One layer's sparse cache; open with `SparseLayer.open`. */
export class SparseLayer {
  readonly codec: SpanCodec;
  /** Where the spans are (`codec.table`). */
  readonly table: SpanTable;
  readonly #o: Required<Omit<SparseLayerOptions, 'log' | 'share' | 'fetchAhead'>>;
  readonly #fetchAhead: FetchAhead | undefined;
  /** Aborts readahead fetches when the layer closes. */
  readonly #closing = new AbortController();
  /** Where the sequential stream of reads began and is (the furthest end seen), and its readahead window. */
  #streamStart = -1;
  #streamEnd = -1;
  #aheadBytes = 0;
  /** The uncompressed offset up to which readahead has been asked for. */
  #aheadUntil = 0;
  readonly #share: SpanShare | undefined;
  readonly #log: Logger;
  readonly #file: FileHandle;
  readonly #state: Uint8Array;
  readonly #inflight = new Map<number, Promise<void>>();
  /** Compressed bytes fetched from the registry by this instance. */
  fetchedBytes = 0;
  /** Uncompressed bytes of spans taken from the share. */
  sharedBytes = 0;
  #saving: Promise<void> = Promise.resolve();

  private constructor(o: SparseLayerOptions, file: FileHandle, state: Uint8Array) {
    this.codec = o.codec;
    this.table = o.codec.table;
    this.#o = {
      codec: o.codec, path: o.path, fetchRange: o.fetchRange, maxFetchBytes: o.maxFetchBytes ?? 64 * 1024 * 1024,
      readaheadMaxBytes: o.readaheadMaxBytes ?? 32 * 1024 * 1024, readaheadTimeoutMs: o.readaheadTimeoutMs ?? 120_000,
    };
    this.#log = o.log ?? silentLogger();
    this.#share = o.share;
    this.#fetchAhead = o.fetchAhead;
    this.#file = file;
    this.#state = state;
  }

  /** Open (creating) the sparse file and load its span record. */
  static async open(o: SparseLayerOptions): Promise<SparseLayer> {
    const n = o.codec.table.points.length;
    const state = new Uint8Array(n);
    const saved = await readFile(`${o.path}.spans`).catch(() => undefined);
    if (saved?.length === n) saved.forEach((v, i) => (state[i] = v === ABSENT ? ABSENT : ON_DISK));
    const file = await open(o.path, 'a+').then(async (fh) => {
      await fh.close();
      return open(o.path, 'r+');
    });
    return new SparseLayer(o, file, state);
  }

  /** Open over a gzip checkpoint table; throws `CLIP_ZRAN_UNAVAILABLE` without the addon. */
  static async openGzip(o: SparseGzipLayerOptions): Promise<SparseLayer> {
    const z = loadZran();
    if (!z) throw new ClipError('unimplemented', 'CLIP_ZRAN_UNAVAILABLE', 'the clip_zran addon is not built (make zran)');
    const { table, ...rest } = o;
    return SparseLayer.open({ ...rest, codec: gzipSpanCodec(table, z) });
  }

  /** Spans present (for tests and metrics). */
  get presentSpans(): number {
    return this.#state.reduce((n, s) => n + (s === ABSENT ? 0 : 1), 0);
  }

  /** Uncompressed bytes of the spans present (status). */
  get presentBytes(): number {
    let n = 0;
    for (let i = 0; i < this.#state.length; i++) if (this.#state[i] !== ABSENT) n += spanEnd(this.table, i) - (this.table.points[i]?.out ?? 0);
    return n;
  }

  /** Read `len` bytes at uncompressed `off` into `buf` at `bufOff`; returns bytes read. */
  async read(buf: Buffer, bufOff: number, len: number, off: number, signal: AbortSignal): Promise<number> {
    const t = this.table;
    const end = Math.min(off + len, t.uncompressedSize);
    if (end <= off) return 0;
    await this.ensure(spanAt(t, off), spanAt(t, end - 1), signal, true, true);
    // After the read's own spans: the readahead then decodes on from their tail (no gzip window
    // fetch), and in steady state those spans are long present, so nothing waits for it.
    this.#readAhead(off, end);
    return this.#pread(buf, bufOff, off, end);
  }

  /**
   * A reader moving forward through the layer (the kernel's own readahead arrives as 128 KiB reads,
   * a few at a time and not quite in order) gets the spans ahead of it fetched before it asks, in
   * one Range request per window: without it a bulk read pays one round trip and one request per
   * span. The window starts at 1 MiB and doubles per sequential read up to `readaheadMaxBytes`; a
   * jump elsewhere resets it. A new window is asked for once the reader is half-way into the last.
   * Nothing is read ahead until the stream has read `READAHEAD_AFTER_BYTES` in order.
   */
  #readAhead(off: number, end: number): void {
    const max = this.#o.readaheadMaxBytes;
    if (max <= 0) return;
    const near = this.#streamEnd >= 0 && off >= this.#streamEnd - SEQUENTIAL_SLACK_BYTES && off <= this.#streamEnd + SEQUENTIAL_SLACK_BYTES;
    // A read within what the stream already covered (another reader of the same bytes) moves nothing.
    if (near && end <= this.#streamEnd) return;
    if (!near) {
      this.#streamStart = off;
      this.#streamEnd = end;
      this.#aheadBytes = 0;
      this.#aheadUntil = end;
      return;
    }
    this.#streamEnd = Math.max(this.#streamEnd, end);
    if (this.#streamEnd - this.#streamStart < READAHEAD_AFTER_BYTES) return;
    this.#aheadBytes = Math.min(Math.max(this.#aheadBytes * 2, READAHEAD_MIN_BYTES), max);
    const size = this.table.uncompressedSize;
    if (this.#aheadUntil >= size || this.#aheadUntil - this.#streamEnd > this.#aheadBytes / 2) return;
    const from = Math.max(this.#aheadUntil, this.#streamEnd);
    const to = Math.min(this.#streamEnd + this.#aheadBytes, size);
    this.#aheadUntil = to;
    if (to <= from) return;
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(this.#o.readaheadTimeoutMs)]);
    this.ensure(spanAt(this.table, from), spanAt(this.table, to - 1), signal).catch((err: unknown) => {
      // A reader that gets there fetches the spans itself (and reports what fails).
      if (!this.#closing.signal.aborted) this.#log.debug({ err: messageOf(err), from, to }, 'readahead of layer spans failed');
    });
  }

  /** Read only when every span of the range is already verified on disk; else undefined, no fetch. */
  async readPresent(buf: Buffer, bufOff: number, len: number, off: number): Promise<number | undefined> {
    const t = this.table;
    const end = Math.min(off + len, t.uncompressedSize);
    if (end <= off) return 0;
    for (let i = spanAt(t, off), last = spanAt(t, end - 1); i <= last; i++) if (this.#state[i] !== VERIFIED) return undefined;
    // The read path serves present spans here first: a sequential reader inside a readahead
    // window moves the stream on, so the next window is asked for before the reader gets there.
    this.#readAhead(off, end);
    return this.#pread(buf, bufOff, off, end);
  }

  /**
   * Where `len` bytes at uncompressed `off` lie in the sparse file, when every span they touch is
   * verified (else undefined, nothing fetched): a FUSE driver may splice them from there. Moves
   * the sequential stream on like `readPresent`.
   */
  diskRange(off: number, len: number): { fd: number; position: number } | undefined {
    const t = this.table;
    const end = off + len;
    if (len <= 0 || off < 0 || end > t.uncompressedSize || this.#closing.signal.aborted) return undefined;
    for (let i = spanAt(t, off), last = spanAt(t, end - 1); i <= last; i++) if (this.#state[i] !== VERIFIED) return undefined;
    this.#readAhead(off, end);
    return { fd: this.#file.fd, position: off };
  }

  async #pread(buf: Buffer, bufOff: number, off: number, end: number): Promise<number> {
    const { bytesRead } = await this.#file.read(buf, bufOff, end - off, off);
    if (bytesRead !== end - off) throw dataCorrupt('CLIP_ZRAN_SHORT_READ', `sparse layer file ${this.#o.path}: short read`);
    return bytesRead;
  }

  /**
   * Make spans first..last present (fetching runs of missing ones), waiting for any in flight —
   * every wait, joined or own, ends when `signal` aborts (`CLIP_RANGE_FETCH_TIMEOUT`, unavailable).
   * `offer` = false keeps what this call fetches out of the share (background completion).
   * `ahead` (an on-demand read): when span `last` has to come from the registry, the request also
   * takes the absent spans after it, as far as `fetchAhead` allows; the call waits only for its own.
   */
  async ensure(first: number, last: number, signal: AbortSignal, offer = true, ahead = false): Promise<void> {
    try {
      await this.#ensure(first, last, signal, offer, ahead ? last : undefined);
    } catch (err) {
      throw this.#timedOut(err, signal, first, last);
    }
  }

  /**
   * A deadline (this wait's, or that of the fetch it joined) is a transient failure with its own
   * code, whatever the transport made of the abort.
   */
  #timedOut(err: unknown, signal: AbortSignal, first: number, last: number): unknown {
    const aborted = signal.aborted || (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError'));
    if (!aborted || (err instanceof ClipError && err.code === 'CLIP_RANGE_FETCH_TIMEOUT')) return err;
    if (isKind(err, 'data_corrupt')) return err;
    return unavailable('CLIP_RANGE_FETCH_TIMEOUT', `${this.codec.name} spans ${first}-${last} of ${this.#o.path} not fetched within the deadline (${messageOf(err)})`, err);
  }

  async #ensure(first: number, last: number, signal: AbortSignal, offer: boolean, aheadFrom: number | undefined): Promise<void> {
    const waits: Array<Promise<void>> = [];
    let run: number[] = [];
    const flush = (): void => {
      if (run.length > 0) waits.push(this.#fetchRun(run, signal, offer, aheadFrom));
      run = [];
    };
    for (let i = first; i <= last; i++) {
      const inflight = this.#inflight.get(i);
      if (inflight) {
        flush();
        waits.push(inflight);
      } else if (this.#state[i] === VERIFIED) {
        flush();
      } else if (this.#state[i] === ON_DISK) {
        flush();
        waits.push(this.#track([i], this.#verifyOnDisk(i, signal)));
      } else {
        const r = this.codec.compressedRange(i);
        const runStart = run.length > 0 ? this.codec.compressedRange(run[0] as number).start : r.start;
        if (r.end - runStart > this.#o.maxFetchBytes) flush();
        run.push(i);
      }
    }
    flush();
    // A fetch this call joined runs on its starter's deadline; this caller waits only until its own.
    await raceAbort(Promise.all(waits), signal);
  }

  /** Whether every span is present. */
  get complete(): boolean {
    return this.#state.every((s) => s !== ABSENT);
  }

  /**
   * Fetch every missing span in order, at most `bytesPerSec` compressed bytes per second, pausing
   * while on-demand fetches are in flight so they keep the link, and awaiting `waitIdle` (if
   * given) before each batch. Resolves when all are present.
   */
  async fill(
    bytesPerSec: number, signal: AbortSignal, batchBytes = 1024 * 1024, waitIdle?: () => Promise<void>, clock: Clock = systemClock,
    batchTimeoutMs?: number,
  ): Promise<void> {
    const t = this.table;
    for (let i = 0; i < t.points.length; ) {
      signal.throwIfAborted();
      await waitIdle?.();
      while (this.#inflight.size > 0) {
        await Promise.allSettled([...this.#inflight.values()]);
        signal.throwIfAborted();
      }
      if (this.#state[i] !== ABSENT) {
        i++;
        continue;
      }
      let j = i;
      const start = this.codec.compressedRange(i).start;
      while (j + 1 < t.points.length && this.#state[j + 1] === ABSENT && this.codec.compressedRange(j + 1).end - start <= batchBytes) j++;
      const before = this.fetchedBytes;
      const started = clock.nowMs();
      // Not offered to the share: the completed layer is published whole, once. Each batch has
      // its own deadline, so a registry that trickles cannot hold the completion forever.
      const batchSignal = batchTimeoutMs === undefined ? signal : AbortSignal.any([signal, AbortSignal.timeout(batchTimeoutMs)]);
      await this.ensure(i, j, batchSignal, false);
      const owed = ((this.fetchedBytes - before) / bytesPerSec) * 1000 - (clock.nowMs() - started);
      if (owed > 0) await clock.sleep(owed, signal);
      i = j + 1;
    }
    await this.#saving;
  }

  async close(): Promise<void> {
    this.#closing.abort();
    await Promise.allSettled([...this.#inflight.values()]);
    await this.#saving;
    await this.#file.close();
  }

  /** Delete the sparse file and its record (after the full layer is cached). */
  async remove(): Promise<void> {
    await this.close().catch(() => {});
    await rm(this.#o.path, { force: true });
    await rm(`${this.#o.path}.spans`, { force: true });
  }

  #track(spans: number[], work: Promise<void>): Promise<void> {
    const p = work.finally(() => spans.forEach((i) => this.#inflight.get(i) === p && this.#inflight.delete(i)));
    spans.forEach((i) => this.#inflight.set(i, p));
    return p;
  }

  #fetchRun(spans: number[], signal: AbortSignal, offer: boolean, aheadFrom?: number): Promise<void> {
    return this.#track(spans, this.#fetchAndStore(spans, signal, offer, aheadFrom));
  }

  /**
   * Spans from the share where it has them (verified), the rest from the registry in contiguous
   * runs; the run ending at `aheadFrom` also takes the spans after it (`#aheadOf`). Spans the share
   * served never extend a request: a node reading what another node shared fetches nothing more.
   */
  async #fetchAndStore(spans: number[], signal: AbortSignal, offer = true, aheadFrom?: number): Promise<void> {
    const share = this.#share;
    if (!share) return this.#fetchFromRegistry(spans, signal, false, aheadFrom);
    const found = await Promise.all(spans.map((i) => share.get(i, signal).catch(() => undefined)));
    let pending: number[] = [];
    const flush = async (): Promise<void> => {
      if (pending.length > 0) await this.#fetchFromRegistry(pending, signal, offer, aheadFrom);
      pending = [];
    };
    for (const [k, i] of spans.entries()) {
      const data = found[k];
      if (data && this.#matches(i, data)) {
        await flush();
        await this.#file.write(data, 0, data.length, (this.table.points[i] as { out: number }).out);
        this.#state[i] = VERIFIED;
        this.sharedBytes += data.length;
      } else {
        if (data) this.#log.warn({ span: i }, 'shared span does not match its digest; fetching it from the registry');
        pending.push(i);
      }
    }
    await flush();
    this.#saveState();
  }

  /** Whether `data` is exactly span `i`. */
  #matches(i: number, data: Buffer): boolean {
    const p = this.table.points[i] as { out: number; sha256: Buffer };
    return data.length === spanEnd(this.table, i) - p.out && createHash('sha256').update(data).digest().equals(p.sha256);
  }

  /**
   * Fetch contiguous `spans` by one Range request; with `offer`, each verified span goes to the
   * share. When they end at `aheadFrom` (an on-demand miss), the request also covers the spans
   * `#behindOf` and `#aheadOf` pick: those are in flight from here on (other readers join them),
   * decoded after `spans`, not waited for. `spans` decode first, from their own window when the
   * span before them is not on disk (fetched with the first behind span's, in one pack request).
   */
  async #fetchFromRegistry(spans: number[], signal: AbortSignal, offer: boolean, aheadFrom?: number): Promise<void> {
    const last = spans[spans.length - 1] as number;
    const first = spans[0] as number;
    // Claimed before the first await, so no other fetch can start on them meanwhile.
    const ahead = aheadFrom === last ? this.#aheadOf(last) : [];
    const behind = aheadFrom === last ? this.#behindOf(first, this.codec.compressedRange(ahead[ahead.length - 1] ?? last).end) : [];
    const aheadDone = ahead.length > 0 ? this.#claim(ahead) : undefined;
    const behindDone = behind.length > 0 ? this.#claim(behind) : undefined;
    const rejectExtra = (err: unknown): void => {
      aheadDone?.rejectAll(err);
      behindDone?.rejectAll(err);
    };
    const start = this.codec.compressedRange(behind[0] ?? first).start;
    const end = this.codec.compressedRange(ahead.length > 0 ? (ahead[ahead.length - 1] as number) : last).end;
    const started = Date.now();
    let before: Buffer | undefined;
    let beforeBehind: Buffer | undefined;
    let compressed: Buffer;
    try {
      // Spans after the first decode from the one before; the first from the verified span before
      // it when that is on disk, else the codec gets ready (a gzip window from the pack) meanwhile.
      before = behind.length > 0 ? undefined : await this.#tailBefore(first);
      beforeBehind = behind.length > 0 ? await this.#tailBefore(behind[0] as number) : undefined;
      const windows = [...(behind.length > 0 && beforeBehind === undefined ? [behind[0] as number] : []), ...(before === undefined ? [first] : [])];
      const ready = windows.length > 0 ? this.codec.prepare?.(windows, signal) : undefined;
      ready?.catch(() => {});
      const fetchStarted = Date.now();
      compressed = await this.#o.fetchRange(start, end, signal);
      this.fetchedBytes += compressed.length;
      if (compressed.length !== end - start) {
        throw dataCorrupt('CLIP_ZRAN_RANGE_LENGTH', `range ${start}-${end}: got ${compressed.length} bytes, expected ${end - start}`);
      }
      this.#fetchAhead?.observe(compressed.length, Date.now() - fetchStarted);
      await ready;
      before = await this.#storeSpans(spans, compressed, start, before, signal, offer);
    } catch (err) {
      rejectExtra(err);
      throw err;
    }
    this.#saveState();
    this.#log.debug({
      codec: this.codec.name, layer_key: basename(this.#o.path).slice(0, 12), first_span: first, bytes: end - start, spans: spans.length,
      ahead_spans: ahead.length, behind_spans: behind.length, duration_ms: Date.now() - started,
    }, 'layer spans fetched');
    if (aheadDone || behindDone) {
      // Already fetched: decoding them needs no reader's deadline, only the layer staying open.
      // Each span is released as it is written, so a reader of the first waits for no other.
      const closing = this.#closing.signal;
      void (async () => {
        if (aheadDone) await this.#storeSpans(ahead, compressed, start, before, closing, offer, (i) => aheadDone.resolve(i));
        if (behindDone) await this.#storeSpans(behind, compressed, start, beforeBehind, closing, offer, (i) => behindDone.resolve(i));
        this.#saveState();
      })().catch((err: unknown) => {
        rejectExtra(err);
        this.#saveState();
      });
    }
  }

  /**
   * Decode, verify and write `spans` from `compressed` (which starts at blob offset `start`),
   * telling `stored` after each; returns the last span's bytes.
   */
  async #storeSpans(
    spans: number[], compressed: Buffer, start: number, before: Buffer | undefined, signal: AbortSignal, offer: boolean, stored?: (i: number) => void,
  ): Promise<Buffer | undefined> {
    for (const i of spans) {
      const r = this.codec.compressedRange(i);
      const data = await this.#decodeSpan(i, compressed.subarray(r.start - start, r.end - start), { before, signal });
      await this.#file.write(data, 0, data.length, (this.table.points[i] as { out: number }).out);
      this.#state[i] = VERIFIED;
      if (offer) this.#share?.put(i, data, () => this.#verifiedSpan(i));
      stored?.(i);
      before = data;
    }
    return before;
  }

  /**
   * The spans a miss ending at span `last` also fetches: the absent ones right after it, none in
   * flight, within the fetch-ahead's uncompressed cap and compressed budget and `maxFetchBytes`.
   */
  #aheadOf(last: number): number[] {
    const fa = this.#fetchAhead;
    const budget = fa?.budget() ?? 0;
    if (!fa || budget <= 0) return [];
    const t = this.table;
    const from = this.codec.compressedRange(last).end;
    const runStart = this.codec.compressedRange(last).start;
    const out = spanEnd(t, last);
    const ahead: number[] = [];
    for (let i = last + 1; i < t.points.length; i++) {
      if (this.#state[i] !== ABSENT || this.#inflight.has(i)) break;
      const r = this.codec.compressedRange(i);
      if (r.end - from > budget || spanEnd(t, i) - out > fa.maxBytes || r.end - runStart > this.#o.maxFetchBytes) break;
      ahead.push(i);
    }
    return ahead;
  }

  /**
   * The spans a miss starting at span `first` also fetches before it: the absent ones right
   * before it, none in flight, back to the start of its fetch-ahead block (the `maxBytes`-aligned
   * stretch of the layer holding span `first`), within the compressed budget, and with the request
   * (ending at compressed `runEnd`) within `maxFetchBytes`.
   * A container's reads land all around its earlier ones (a loader faulting in a library's pages,
   * an import reading a package's files in its own order), not only after them.
   */
  #behindOf(first: number, runEnd: number): number[] {
    const fa = this.#fetchAhead;
    const budget = fa?.budget() ?? 0;
    if (!fa || budget <= 0 || first === 0) return [];
    const t = this.table;
    const blockStart = Math.floor((t.points[first] as { out: number }).out / fa.maxBytes) * fa.maxBytes;
    const to = this.codec.compressedRange(first).start;
    const behind: number[] = [];
    for (let i = first - 1; i >= 0; i--) {
      if (this.#state[i] !== ABSENT || this.#inflight.has(i)) break;
      const r = this.codec.compressedRange(i);
      if ((t.points[i] as { out: number }).out < blockStart || to - r.start > budget || runEnd - r.start > this.#o.maxFetchBytes) break;
      behind.push(i);
    }
    return behind.reverse();
  }

  /**
   * Mark each of `spans` in flight until the returned handle settles it (readers of a span wait
   * for that span only): `resolve(i)` once span i is written, `rejectAll` for those still pending.
   */
  #claim(spans: number[]): { resolve: (i: number) => void; rejectAll: (err: unknown) => void } {
    const pending = new Map<number, { resolve: () => void; reject: (err: unknown) => void }>();
    for (const i of spans) {
      const done = new Promise<void>((resolve, reject) => pending.set(i, { resolve, reject }));
      // Nobody may be waiting: a failure is then only the joiners' (a later read fetches anew).
      this.#track([i], done).catch(() => {});
    }
    return {
      resolve: (i) => {
        pending.get(i)?.resolve();
        pending.delete(i);
      },
      rejectAll: (err) => {
        for (const p of pending.values()) p.reject(err);
        pending.clear();
      },
    };
  }

  /** Up to 32 KiB of verified bytes ending where span `i` starts, if span i-1 is verified. */
  async #tailBefore(i: number): Promise<Buffer | undefined> {
    if (i === 0 || this.#state[i - 1] !== VERIFIED) return undefined;
    const out = (this.table.points[i] as { out: number }).out;
    const len = Math.min(32 * 1024, out);
    const buf = Buffer.alloc(len);
    const { bytesRead } = await this.#file.read(buf, 0, len, out - len);
    return bytesRead === len ? buf : undefined;
  }

  /** Decode span `i` and check its sha256: no byte reaches the file unverified. */
  async #decodeSpan(i: number, compressed: Buffer, ctx: DecodeContext): Promise<Buffer> {
    const p = this.table.points[i];
    if (!p) throw new RangeError(`no span ${i}`);
    const data = await this.codec.decode(i, compressed, ctx);
    if (data.length !== spanEnd(this.table, i) - p.out || !createHash('sha256').update(data).digest().equals(p.sha256)) {
      throw dataCorrupt('CLIP_ZRAN_SPAN_DIGEST', `${this.codec.name} span ${i} (uncompressed ${p.out}) does not match its digest`);
    }
    return data;
  }

  /** Span `i` read back from the file and checked against its sha256; undefined when absent, unreadable or different. */
  async #verifiedSpan(i: number): Promise<Buffer | undefined> {
    if (this.#state[i] !== VERIFIED || this.#closing.signal.aborted) return undefined;
    const p = this.table.points[i] as { out: number };
    const data = Buffer.alloc(spanEnd(this.table, i) - p.out);
    const read = await this.#file.read(data, 0, data.length, p.out).catch(() => undefined);
    return read?.bytesRead === data.length && this.#matches(i, data) ? data : undefined;
  }

  /** A span a previous run wrote: hash it once; a mismatch (e.g. lost writes) refetches it. */
  async #verifyOnDisk(i: number, signal: AbortSignal): Promise<void> {
    const t = this.table;
    const p = t.points[i] as { out: number; sha256: Buffer };
    const data = Buffer.alloc(spanEnd(t, i) - p.out);
    const { bytesRead } = await this.#file.read(data, 0, data.length, p.out);
    if (bytesRead === data.length && createHash('sha256').update(data).digest().equals(p.sha256)) {
      this.#state[i] = VERIFIED;
      return;
    }
    this.#log.warn({ span: i }, 'sparse layer span on disk does not match its digest; refetching');
    this.#state[i] = ABSENT;
    await this.#fetchAndStore([i], signal);
  }

  /** Persist the span record after the data it describes was written (best effort). */
  #saveState(): void {
    const snapshot = Buffer.from(this.#state.map((s) => (s === ABSENT ? ABSENT : ON_DISK)));
    this.#saving = this.#saving
      .then(() => writeFile(`${this.#o.path}.spans`, snapshot))
      .catch((err) => this.#log.warn({ err: findClipError(err)?.message ?? String(err) }, 'saving the sparse span record failed'));
  }
}
