/**
 * One download of one layer into `<cacheDir>/<hex>.partial`, shared by every reader of the layer
 * (single flight). The blob is streamed, decompressed and hashed on the fly; each waiting read
 * resolves as soon as its own range is on disk.
 *
 * States: `running` (attempts with bounded retries; bytes on disk only grow, because a retry
 * re-reads the content-addressed blob from the start and writes only what is new) → `done`
 * (sha256 == diffID and size checked, fsynced, renamed to the final name; the open file handle is
 * handed to the store) | `failed` (the partial file is deleted, every waiter rejected).
 */
import { createHash } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClipError, dataCorrupt, isKind, messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { createDecompressor, decompressFailed, detectCompression, sniff, type Compression } from '../compression/index.js';
import type { BlobSource } from './blob-source.js';
import { isAuthRefusal } from '../registry/index.js';
import { preadFull, pwriteFull } from './file-io.js';
import type { LayerRef } from './layer-reader.js';
import { raceAbort } from '../util/abortable.js';
import {
  ATTR_CLIP_BYTES, ATTR_CLIP_BYTES_COMPRESSED, ATTR_CLIP_COMPRESSION, ATTR_CLIP_DOWNLOAD_ATTEMPT, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST,
  ATTR_CLIP_LAYER_SIZE, ATTR_CLIP_SOURCE, SPAN_LAYER_DECOMPRESS, SPAN_LAYER_DOWNLOAD, SPAN_LAYER_VERIFY, withSpan,
} from '../telemetry/index.js';

export interface LayerDownloadOptions {
  ref: LayerRef;
  /** The diffID's hex: names the files. */
  hex: string;
  cacheDir: string;
  blobs: BlobSource;
  log: Logger;
  /** Retries after the first attempt. */
  maxRetries: number;
  retryBaseDelayMs: number;
  /**
   * An attempt that receives fewer than `stallMinBytes` compressed bytes in this long is aborted
   * (and retried): a registry that trickles a byte now and then is as stuck as a silent one.
   */
  stallTimeoutMs: number;
  /** Progress that counts against the stall timer; default 64 KiB. */
  stallMinBytes?: number;
  /** Compressed bytes received from the registry, as they arrive (the layer ledger). */
  onFetched?: (bytes: number) => void;
}

/** What a finished download leaves behind: the final file, still open. */
export interface DownloadedLayer {
  file: FileHandle;
  path: string;
  size: number;
  compression: Compression;
}

interface Waiter {
  end: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

type State = { type: 'running' } | { type: 'done' } | { type: 'failed'; error: ClipError };

/** Compressed bytes an attempt must receive per stall interval to count as progressing. */
const DEFAULT_STALL_MIN_BYTES = 64 * 1024;

let downloads = 0;
// A unique temp name per download: a failed download's cleanup can never hit its successor's file.
const partialPath = (cacheDir: string, hex: string): string => join(cacheDir, `${hex}.${process.pid}-${++downloads}.partial`);
export const finalPath = (cacheDir: string, hex: string): string => join(cacheDir, hex);

/** A running (or finished) download; `result` settles once, when it is done or has failed. */
export class LayerDownload {
  readonly result: Promise<DownloadedLayer>;
  readonly #o: LayerDownloadOptions;
  readonly #abort = new AbortController();
  #state: State = { type: 'running' };
  #fh: FileHandle | undefined;
  #written = 0;
  #waiters: Waiter[] = [];
  #readers = 0;
  /** Compressed bytes received over every attempt. */
  #compressed = 0;

  constructor(opts: LayerDownloadOptions) {
    this.#o = opts;
    const { ref } = opts;
    // Started inside the read that needed it, so the download span is that read's child.
    const attrs = { [ATTR_CLIP_SOURCE]: 'registry', [ATTR_CLIP_LAYER_DIGEST]: ref.digest, [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId, [ATTR_CLIP_LAYER_SIZE]: ref.uncompressedSize };
    this.result = withSpan(SPAN_LAYER_DOWNLOAD, attrs, async (span) => {
      const done = await this.#run();
      span.setAttributes({ [ATTR_CLIP_COMPRESSION]: done.compression, [ATTR_CLIP_BYTES]: done.size, [ATTR_CLIP_BYTES_COMPRESSED]: this.#compressed });
      return done;
    });
    this.result.catch(() => {}); // settled through waiters; the store observes it too
  }

  /** True once the download has failed for good; the next read starts another. */
  get failed(): boolean {
    return this.#state.type === 'failed';
  }

  /** Bytes of the uncompressed layer already on disk. */
  get bytesOnDisk(): number {
    return this.#written;
  }

  /** Read a range once it is on disk; `signal` bounds the wait. */
  async read(buf: Buffer, bufOffset: number, length: number, offset: number, signal: AbortSignal): Promise<number> {
    await this.#waitFor(offset + length, signal);
    const fh = this.#fh;
    if (fh === undefined) throw this.#failure();
    this.#readers++;
    try {
      return await preadFull(fh, buf, bufOffset, length, offset);
    } finally {
      this.#readers--;
      this.#closeIfFailed();
    }
  }

  /** Stop the download (store shutdown); waiters reject `unavailable`. */
  abort(): void {
    this.#abort.abort(unavailable('CLIP_LAYER_FETCH_FAILED', `download of layer ${this.#o.ref.diffId} aborted`));
  }

  #waitFor(end: number, signal: AbortSignal): Promise<void> {
    if (this.#written >= end) return Promise.resolve();
    if (this.#state.type === 'failed') return Promise.reject(this.#state.error);
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        end,
        resolve: () => (signal.removeEventListener('abort', onAbort), resolve()),
        reject: (err) => (signal.removeEventListener('abort', onAbort), reject(err)),
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #notify(): void {
    const ready = this.#waiters.filter((w) => w.end <= this.#written);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => w.end > this.#written);
    for (const w of ready) w.resolve();
  }

  #failure(): ClipError {
    return this.#state.type === 'failed' ? this.#state.error : unavailable('CLIP_LAYER_FETCH_FAILED', 'layer file closed');
  }

  async #run(): Promise<DownloadedLayer> {
    const { cacheDir, hex, ref, log } = this.#o;
    const tmp = partialPath(cacheDir, hex);
    const started = Date.now();
    try {
      this.#fh = await open(tmp, 'w+');
      const compression = await this.#attempts();
      await this.#fh.sync();
      const path = finalPath(cacheDir, hex);
      await rename(tmp, path);
      this.#state = { type: 'done' };
      this.#notify();
      log.info({ layer: ref.digest, diff_id: ref.diffId, bytes: ref.uncompressedSize, duration_ms: Date.now() - started, compression }, 'layer downloaded');
      return { file: this.#fh, path, size: ref.uncompressedSize, compression };
    } catch (err) {
      const error = toReadError(err, ref);
      this.#state = { type: 'failed', error };
      for (const w of this.#waiters.splice(0)) w.reject(error);
      log.warn({ layer: ref.digest, diff_id: ref.diffId, duration_ms: Date.now() - started, err: error.message }, 'layer download failed');
      await unlink(tmp).catch(() => {});
      this.#closeIfFailed();
      throw error;
    }
  }

  async #attempts(): Promise<Compression> {
    const { maxRetries, retryBaseDelayMs, ref, log } = this.#o;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#attempt(attempt + 1);
      } catch (err) {
        // Refused credentials were already retried from every source by the registry client.
        if (this.#abort.signal.aborted || isKind(err, 'data_corrupt') || isAuthRefusal(err) || attempt >= maxRetries) throw err;
        const delayMs = retryBaseDelayMs * 2 ** attempt;
        log.warn({ layer: ref.digest, diff_id: ref.diffId, attempt: attempt + 1, delay_ms: delayMs, err: messageOf(err) }, 'layer download attempt failed, retrying');
        await sleep(delayMs, undefined, { signal: this.#abort.signal });
      }
    }
  }

  /** One pass over the whole blob; throws on any failure. */
  async #attempt(attempt: number): Promise<Compression> {
    const { ref, blobs, stallTimeoutMs } = this.#o;
    const ac = new AbortController();
    const onOuterAbort = () => ac.abort(this.#abort.signal.reason);
    // Aborted before this attempt began (while the partial file was being opened): never start it.
    this.#abort.signal.throwIfAborted();
    this.#abort.signal.addEventListener('abort', onOuterAbort, { once: true });
    const minBytes = this.#o.stallMinBytes ?? DEFAULT_STALL_MIN_BYTES;
    let stall: NodeJS.Timeout | undefined;
    let sinceArmed = 0;
    const armStall = () => {
      clearTimeout(stall);
      sinceArmed = 0;
      stall = setTimeout(
        () => ac.abort(unavailable('CLIP_LAYER_FETCH_FAILED', `layer ${ref.diffId}: fewer than ${minBytes} bytes in ${stallTimeoutMs} ms`)),
        stallTimeoutMs,
      );
    };
    try {
      armStall();
      const src = await raceAbort(blobs.open(ref, ac.signal), ac.signal);
      const { head, stream } = await raceAbort(sniff(src), ac.signal).catch((err) => (src.destroy(), Promise.reject(err)));
      const compression = detectCompression(head);
      const hash = createHash('sha256');
      let produced = 0;
      const sink = new Writable({
        highWaterMark: 1 << 20,
        write: (chunk: Buffer, _enc, cb) => {
          const start = produced;
          produced += chunk.length;
          hash.update(chunk);
          this.#store(chunk, start).then(() => cb(), cb);
        },
      });
      const decompress = { [ATTR_CLIP_SOURCE]: 'registry', [ATTR_CLIP_COMPRESSION]: compression, [ATTR_CLIP_DOWNLOAD_ATTEMPT]: attempt };
      await withSpan(SPAN_LAYER_DECOMPRESS, decompress, async (span) => {
        const counted = new Transform({
          transform: (chunk: Buffer, _enc, cb) => {
            this.#compressed += chunk.length;
            sinceArmed += chunk.length;
            if (sinceArmed >= minBytes) armStall();
            this.#o.onFetched?.(chunk.length);
            cb(null, chunk);
          },
        });
        await pipeline(stream, counted, createDecompressor(compression), sink, { signal: ac.signal }).catch((err) => {
          throw ac.signal.aborted ? ac.signal.reason : classify(err, ref);
        });
        span.setAttribute(ATTR_CLIP_BYTES, produced);
      });
      const verify = { [ATTR_CLIP_LAYER_DIFF_ID]: ref.diffId, [ATTR_CLIP_BYTES]: produced };
      await withSpan(SPAN_LAYER_VERIFY, verify, async () => this.#verify(produced, hash.digest('hex')));
      return compression;
    } finally {
      clearTimeout(stall);
      this.#abort.signal.removeEventListener('abort', onOuterAbort);
    }
  }

  /** Write the part of `chunk` (at uncompressed offset `start`) that is not yet on disk. */
  async #store(chunk: Buffer, start: number): Promise<void> {
    const end = start + chunk.length;
    const { ref } = this.#o;
    if (end > ref.uncompressedSize) {
      throw dataCorrupt('CLIP_LAYER_SIZE_MISMATCH', `layer ${ref.diffId} is longer than its declared ${ref.uncompressedSize} bytes`);
    }
    if (end <= this.#written || this.#fh === undefined) return;
    const skip = Math.max(0, this.#written - start);
    await pwriteFull(this.#fh, chunk, skip, start + skip);
    this.#written = end;
    this.#notify();
  }

  #verify(produced: number, hex: string): void {
    const { ref } = this.#o;
    if (produced !== ref.uncompressedSize) {
      throw dataCorrupt('CLIP_LAYER_SIZE_MISMATCH', `layer ${ref.diffId}: ${produced} bytes, expected ${ref.uncompressedSize}`);
    }
    if (`sha256:${hex}` !== ref.diffId) {
      throw dataCorrupt('CLIP_LAYER_DIFF_ID_MISMATCH', `layer ${ref.digest}: uncompressed sha256:${hex}, expected ${ref.diffId}`);
    }
  }

  #closeIfFailed(): void {
    if (this.#state.type !== 'failed' || this.#readers > 0 || this.#fh === undefined) return;
    const fh = this.#fh;
    this.#fh = undefined;
    fh.close().catch(() => {});
  }
}

/** A codec error means bad bytes (not retried); anything else is left for the retry loop. */
function classify(err: unknown, ref: LayerRef): unknown {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return decompressFailed(`layer ${ref.digest}: ${messageOf(err)}`, err);
  }
  return err;
}

/** Reads see `data_corrupt` for bad bytes and `unavailable` for everything else. */
function toReadError(err: unknown, ref: LayerRef): ClipError {
  // Refused credentials keep their code: the reader's log names the cause, not a generic fetch failure.
  if (err instanceof ClipError && (err.kind === 'data_corrupt' || err.code === 'CLIP_LAYER_FETCH_FAILED' || isAuthRefusal(err))) return err;
  if (isKind(err, 'data_corrupt')) return decompressFailed(messageOf(err), err);
  return unavailable('CLIP_LAYER_FETCH_FAILED', `layer ${ref.digest} from ${ref.ref}: ${messageOf(err)}`, err);
}
