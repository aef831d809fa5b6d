/**
 * Builds a clip index from a layer stream in one pass and bounded memory: the raw bytes are
 * digested, decompressed according to their magic bytes, digested again (diffID), counted and fed
 * to the streaming tar parser, whose entries go into the entry table.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClipError, dataCorrupt, findClipError, unavailable } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
// One codec module for the whole daemon: the layer store decompresses the same blobs.
import { createDecompressor, decompressFailed, detectCompression, type Compression } from '../compression/index.js';

/** Bytes needed to recognise every supported compression. */
const MAGIC_BYTES = 4;
import { EntryTable } from './entry-table.js';
import { DEFAULT_CLIP_LIMITS, type ClipLimits } from './limits.js';
import { TarParser } from './tar-parser.js';
import type { ClipIndex, CompressedObserver } from './types.js';

export interface BuildIndexOptions {
  /** Digest of the blob as published; verified against the bytes read. */
  compressedDigest?: string | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /**
   * Receives every uncompressed byte, in order, with backpressure: lets a caller that had to
   * download the layer to index it keep the bytes (the disk cache) instead of fetching them twice.
   */
  uncompressedSink?: { write(chunk: Buffer): Promise<unknown> } | undefined;
  /** Sees every compressed byte (zran's table builders); its result becomes a section. */
  compressedObserver?: CompressedObserver | undefined;
  /** Bounds on members, xattrs and the index (defaults: `DEFAULT_CLIP_LIMITS`). */
  limits?: Partial<ClipLimits> | undefined;
  /**
   * The caller has already verified the uncompressed bytes against this diffID (a completed layer
   * on disk): it becomes `meta.diffId` without hashing them again, and the compressed digest is not
   * computed either unless `compressedDigest` asks for it (`meta.compressedDigest` is then '').
   * Two sha256 passes over a multi-GB layer on the daemon's one thread are what this saves.
   */
  verifiedDiffId?: string | undefined;
}

/** Read a whole layer stream and return its index (entries sorted for `encodeIndex`). */
export async function buildIndex(stream: Readable, opts: BuildIndexOptions = {}): Promise<ClipIndex> {
  const log = opts.logger ?? silentLogger();
  const started = Date.now();
  const known = opts.verifiedDiffId;
  const rawHash = known === undefined || opts.compressedDigest !== undefined ? createHash('sha256') : undefined;
  const tarHash = known === undefined ? createHash('sha256') : undefined;
  const limits = { ...DEFAULT_CLIP_LIMITS, ...opts.limits };
  const table = new EntryTable(limits.maxEntries);
  const parser = new TarParser((e) => table.add(e), limits);
  let uncompressedSize = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb): void {
      try {
        tarHash?.update(chunk);
        uncompressedSize += chunk.length;
        parser.push(chunk);
        if (opts.uncompressedSink) opts.uncompressedSink.write(chunk).then(() => cb(), cb);
        else cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  let compression: Compression = 'none';
  const onAbort = (): void => void stream.destroy();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    opts.signal?.throwIfAborted();
    const it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
    const head = await readHead(it);
    compression = detectCompression(head.bytes);
    opts.compressedObserver?.start(compression);
    const source = Readable.from(rawChunks(it, head, rawHash, opts.compressedObserver), { objectMode: false });
    const decompressor = opts.compressedObserver?.decompressor?.(compression) ?? createDecompressor(compression);
    await pipeline([source, decompressor, sink], { signal: opts.signal });
    parser.end();
  } catch (err) {
    throw classify(err, opts.signal);
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  const compressedDigest = rawHash ? `sha256:${rawHash.digest('hex')}` : '';
  if (opts.compressedDigest !== undefined && opts.compressedDigest !== compressedDigest) {
    throw dataCorrupt('CLIP_LAYER_DIGEST_MISMATCH', `layer digest is ${compressedDigest}, expected ${opts.compressedDigest}`);
  }
  const entries = table.finish();
  const section = opts.compressedObserver?.finish();
  const diffId = tarHash ? `sha256:${tarHash.digest('hex')}` : (known as string);
  log.debug({ diff_id: diffId, bytes: uncompressedSize, duration_ms: Date.now() - started }, 'clip index built');
  const meta = { diffId, compressedDigest, compression, uncompressedSize, entryCount: entries.length };
  if (section === undefined) return { meta, entries };
  return compression === 'zstd' ? { meta, entries, zstdFrames: section } : { meta, entries, gzipCheckpoints: section };
}

type Head = { bytes: Buffer; done: boolean };

/** Collect at least MAGIC_BYTES (or everything, if the stream is shorter). */
async function readHead(it: AsyncIterator<Buffer | string>): Promise<Head> {
  const parts: Buffer[] = [];
  let len = 0;
  while (len < MAGIC_BYTES) {
    const r = await nextChunk(it);
    if (r === undefined) return { bytes: Buffer.concat(parts), done: true };
    parts.push(r);
    len += r.length;
  }
  return { bytes: Buffer.concat(parts), done: false };
}

async function nextChunk(it: AsyncIterator<Buffer | string>): Promise<Buffer | undefined> {
  let r: IteratorResult<Buffer | string>;
  try {
    r = await it.next();
  } catch (err) {
    throw findClipError(err) ?? unavailable('CLIP_LAYER_READ', 'reading the layer stream failed', err);
  }
  if (r.done === true) return undefined;
  return typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
}

/** The raw (compressed) bytes: the sniffed head, then the rest; all of it digested. */
async function* rawChunks(it: AsyncIterator<Buffer | string>, head: Head, hash: Hash | undefined, observer: CompressedObserver | undefined): AsyncGenerator<Buffer> {
  hash?.update(head.bytes);
  if (head.bytes.length > 0) observer?.push(head.bytes);
  if (head.bytes.length > 0) yield head.bytes;
  if (head.done) return;
  for (;;) {
    const chunk = await nextChunk(it);
    if (chunk === undefined) return;
    hash?.update(chunk);
    observer?.push(chunk);
    yield chunk;
  }
}

function classify(err: unknown, signal: AbortSignal | undefined): ClipError {
  if (signal?.aborted === true) return unavailable('CLIP_BUILD_ABORTED', 'clip index build aborted', err);
  const known = findClipError(err);
  if (known !== undefined) return known;
  return decompressFailed(`layer stream could not be decompressed: ${err instanceof Error ? err.message : String(err)}`, err);
}
