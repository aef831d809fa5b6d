/**
 * The Redis / Redis Cluster ContentCache. Layout and formats: `redis-keys.ts`, `chunk-codec.ts`;
 * publishing: `redis-publisher.ts`. Reads fetch only the chunks covering a range (bounded
 * concurrency, one fetch per chunk however many readers want it), keep decoded chunks in a small
 * byte-bounded LRU, and read ahead for sequential readers. A chunk that is missing (evicted) or
 * fails its checksum makes the read a miss and deletes the object's manifest, so the next node to
 * download the layer republishes it. With a cluster key (`mac`) every manifest and blob must carry
 * a valid tag for its own key name, and every chunk the SHA-256s its signed manifest records — of
 * the whole chunk (v2), or of each 256 KiB piece (v3), checked as reads reach them so a small read
 * hashes one piece, not its 4 MiB chunk; what fails is a miss too, dropped, logged and reported
 * through `onVerificationFailure`.
 */
import { invalidArgument, messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { checkPieces, chunkCheck, decodeBlob, decodeManifest, encodeBlob, PIECE_BYTES, type ChunkPieces, type Manifest } from './chunk-codec.js';
import { BulkChunkFetcher } from './bulk-chunk-fetcher.js';
import { checkPiecesAhead, decodeChunkOffThread } from './chunk-check-off-thread.js';
import type { ContentCache, StoreOptions, StoreResult } from './content-cache.js';
import { Limiter } from './limiter.js';
import type { ObjectMac } from './object-mac.js';
import { parseRedisAddress, RedisConnection, type RedisEndpoint } from './redis-connection.js';
import { RedisKeys } from './redis-keys.js';
import { publishFile } from './redis-publisher.js';
import { LruMap } from '../util/lru-map.js';
import { SpareBufferPool } from '../util/spare-buffer-pool.js';

/** Construction options; the endpoint fields come from `[content_cache]`. */
export interface RedisContentCacheOptions extends RedisEndpoint {
  chunkSizeBytes?: number;
  publishConcurrency?: number;
  readaheadChunks?: number;
  /** Decoded chunks kept in memory (read-ahead and re-reads). */
  memoryBytes?: number;
  /** Chunk GETs in flight at once across all readers. */
  readConcurrency?: number;
  /** Publish lock lifetime; refreshed while a publish runs. */
  lockTtlMs?: number;
  keyPrefix?: string;
  log?: Logger;
  /** The cluster key(s): sign what is stored, accept only what verifies. Without it, CRCs only. */
  mac?: ObjectMac;
  /**
   * With `mac`: bytes of a signed piece (default `PIECE_BYTES`, capped at the chunk size); 0 signs
   * each chunk whole (v2 manifests, as earlier nodes wrote: every read of a chunk hashes all of it).
   */
  pieceBytes?: number;
  /** An object refused by a check a writer of Redis cannot forge (tag or digest); for a metric. */
  onVerificationFailure?: (kind: VerifiedKind) => void;
  /**
   * Fetch a sequential reader's chunks on a worker thread with its own connection (default: true
   * for a standalone Redis over plain TCP, the only kind that worker's client speaks).
   */
  bulkReads?: boolean;
}

/** What kind of object failed verification (the metric's `kind`). */
export type VerifiedKind = 'chunk' | 'manifest' | 'span' | 'index' | 'profile' | 'blob';

/**
 * A decoded chunk; for a v3 manifest with its pieces' digests and which pieces have been checked
 * (a piece's bytes are served only once it is: reads hash just the pieces they cover).
 */
interface Chunk {
  data: Buffer;
  pieces?: { digests: ChunkPieces; checked: Uint8Array };
  /** The bulk worker's memory, all of it this chunk's: moved back to it once the chunk leaves the LRU. */
  recyclable?: true;
}

/**
 * `moved`: the chunk's memory went back to the bulk worker (it left the LRU) before this read copied
 * from it; the read fetches it again.
 */
type ChunkResult = { type: 'ok'; chunk: Chunk } | { type: 'missing' } | { type: 'corrupt'; reason: string; unverified?: boolean } | { type: 'moved' };

/** The metric kind of a blob key (`span:v1:…`, `clip-index/…`, `profile:v1:…`). */
export function blobKind(key: string): VerifiedKind {
  if (key.startsWith('span:')) return 'span';
  if (key.startsWith('clip-index/')) return 'index';
  if (key.startsWith('profile:')) return 'profile';
  return 'blob';
}

const NEGATIVE_TTL_MS = 1_000;
/** Objects of more chunks than this start the bulk worker when their manifest is first read. */
const BULK_FROM_CHUNKS = 2;
const MAX_MANIFESTS = 4_096;
/** Chunk buffers held to move back to the bulk worker: a few, smaller ones not at all, none once reads pause. */
const SPARE = { maxCount: 2, minBytes: 1 << 20, idleMs: 1_000 };
/** How far behind a sequential reader a chunk from the bulk worker is let go. */
const BEHIND_CHUNKS = 2;
/** Fetches of one chunk a read makes when its memory keeps moving back to the worker before the copy. */
const MOVED_TRIES = 3;

/** A ContentCache on Redis; see the file header. */
export class RedisContentCache implements ContentCache {
  readonly name = 'redis';
  readonly chunkSizeBytes: number;
  readonly keys: RedisKeys;
  readonly #conn: RedisConnection;
  readonly #log: Logger;
  readonly #o: { publishConcurrency: number; readaheadChunks: number; lockTtlMs: number };
  /** Decoded chunks, bounded by their total bytes. */
  readonly #lru: LruMap<string, Chunk>;
  readonly #limiter: Limiter;
  readonly #inflight = new Map<string, Promise<ChunkResult>>();
  readonly #manifests = new Map<string, Manifest>();
  readonly #absentUntil = new Map<string, number>();
  /** End offset of the last read per object, to spot sequential readers. */
  readonly #lastEnd = new Map<string, number>();
  readonly #mac: ObjectMac | undefined;
  readonly #pieceBytes: number;
  readonly #onVerificationFailure: (kind: VerifiedKind) => void;
  readonly #bulk: BulkChunkFetcher | undefined;
  #bulkChunks = 0;
  /** Memory of chunks that left the LRU, moved back to the bulk worker with the next fetch. */
  readonly #spare = new SpareBufferPool(SPARE);
  #sparesReturned = 0;

  constructor(opts: RedisContentCacheOptions) {
    this.#log = opts.log ?? silentLogger();
    this.chunkSizeBytes = opts.chunkSizeBytes ?? 4 << 20;
    if (!Number.isSafeInteger(this.chunkSizeBytes) || this.chunkSizeBytes <= 0) {
      throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `content cache chunk size ${this.chunkSizeBytes} must be a positive integer`);
    }
    this.#o = { publishConcurrency: opts.publishConcurrency ?? 4, readaheadChunks: opts.readaheadChunks ?? 2, lockTtlMs: opts.lockTtlMs ?? 30_000 };
    this.#lru = new LruMap<string, Chunk>(opts.memoryBytes ?? Math.max(64 << 20, 4 * this.chunkSizeBytes), (chunk) => chunk.data.length, (_k, chunk) => this.#recycle(chunk));
    this.#limiter = new Limiter(opts.readConcurrency ?? 16);
    this.keys = new RedisKeys(opts.keyPrefix);
    this.#conn = new RedisConnection(opts, this.#log);
    this.#mac = opts.mac;
    this.#pieceBytes = opts.pieceBytes === 0 ? 0 : Math.min(opts.pieceBytes ?? PIECE_BYTES, this.chunkSizeBytes);
    if (!Number.isSafeInteger(this.#pieceBytes) || (this.#pieceBytes !== 0 && this.#pieceBytes < 4096)) {
      throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `content cache piece size ${String(opts.pieceBytes)} must be 0 or at least 4096`);
    }
    this.#onVerificationFailure = opts.onVerificationFailure ?? (() => {});
    this.#bulk = bulkFetcher(opts);
  }

  /** Chunks fetched and checked on the bulk worker so far (tests, logs). */
  get bulkChunksFetched(): number {
    return this.#bulkChunks;
  }

  /** Chunk buffers moved back to the bulk worker to be received into again (tests). */
  get bulkBuffersReturned(): number {
    return this.#sparesReturned;
  }

  /** Whether the bulk worker was started (by a large object's manifest, a sequential reader or `startBulkReads`). */
  get bulkReadsStarted(): boolean {
    return this.#bulk?.started === true;
  }

  /**
   * Start the bulk worker now rather than at the first sequential reader (whose first chunks are
   * fetched in-thread while it loads); true once it answers, false when bulk reads are off or it cannot start.
   */
  startBulkReads(): Promise<boolean> {
    return this.#bulk ? this.#bulk.start() : Promise.resolve(false);
  }

  /** Whether objects are signed and verified with a cluster key. */
  get authenticated(): boolean {
    return this.#mac !== undefined;
  }

  async readInto(key: string, offset: number, length: number, buf: Buffer, bufOffset: number): Promise<number | undefined> {
    if (offset < 0 || length < 0 || bufOffset < 0 || bufOffset + length > buf.length) {
      throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `read of ${length} bytes at ${offset} into a ${buf.length}-byte buffer at ${bufOffset}`);
    }
    const m = await this.#manifest(key);
    if (!m) return undefined;
    const end = Math.min(m.size, offset + length);
    if (end <= offset) return 0;
    const cs = m.chunkSizeBytes;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const sequential = this.#sequential(key, m, offset);
    const copy = async (i: number): Promise<ChunkResult> => {
      const from = Math.max(offset, i * cs);
      const to = Math.min(end, (i + 1) * cs);
      for (let tries = 1; ; tries++) {
        const r = await this.#chunk(key, m, i, sequential);
        if (r.type !== 'ok') return r;
        const { data, pieces } = r.chunk;
        // Its memory went back to the bulk worker after this read got it (a detached buffer has
        // no bytes): fetch it again rather than copy nothing.
        if (data.length < to - i * cs) {
          if (tries < MOVED_TRIES) continue;
          return { type: 'moved' };
        }
        // v3: the pieces this read covers are checked (once per decoded chunk) before a byte is copied.
        const bad = pieces && checkPieces(data, pieces.digests, from - i * cs, to - i * cs, pieces.checked);
        if (bad) return { type: 'corrupt', reason: `chunk ${i}: ${bad}`, unverified: true };
        data.copy(buf, bufOffset + from - offset, from - i * cs, to - i * cs);
        return r;
      }
    };
    const copies = [];
    for (let i = first; i <= last; i++) copies.push(copy(i));
    const bad = (await Promise.all(copies)).find((r) => r.type !== 'ok');
    // Not the object's fault: a miss this time, the object kept.
    if (bad?.type === 'moved') return undefined;
    if (bad) {
      if (bad.type === 'corrupt' && bad.unverified) this.#unverified('chunk', key, bad.reason);
      await this.#drop(key, bad.type === 'corrupt' ? bad.reason : 'chunk missing (evicted?)');
      return undefined;
    }
    this.#readAhead(key, m, offset, end, first, last, sequential || this.#sequential(key, m, offset));
    return end - offset;
  }

  async has(key: string, size: number): Promise<boolean> {
    return (await this.#manifest(key))?.size === size;
  }

  async storeFile(key: string, path: string, size: number, opts?: StoreOptions): Promise<StoreResult> {
    const ctx = {
      conn: this.#conn, keys: this.keys, chunkSizeBytes: this.chunkSizeBytes, log: this.#log,
      publishConcurrency: this.#o.publishConcurrency, lockTtlMs: this.#o.lockTtlMs,
      isComplete: (k: string, s: number) => this.#fetchManifest(k).then((m) => m?.size === s),
      ...(this.#mac ? { mac: this.#mac, pieceBytes: this.#pieceBytes } : {}),
    };
    const result = await publishFile(ctx, key, path, size, opts);
    this.#absentUntil.delete(key);
    return result;
  }

  async getBlob(key: string): Promise<Buffer | undefined> {
    const value = await this.#conn.run('get blob', (c) => c.getBuffer(this.keys.blob(key)));
    if (value === null) return undefined;
    const d = await decodeBlob(value, this.#mac && { mac: this.#mac, name: key });
    if (d.type === 'ok') return d.data;
    if (d.type === 'unverified') this.#unverified(blobKind(key), key, d.reason);
    else this.#log.warn({ key, source: 'redis', reason: d.reason }, 'content cache blob corrupt; deleting');
    await this.#conn.run('delete blob', (c) => c.del(this.keys.blob(key))).catch(() => {});
    return undefined;
  }

  /** Connect and answer one PING: the handshake and the command path are ready before the first Prepare. */
  async connect(): Promise<void> {
    await this.#conn.run('ping', (c) => c.ping());
  }

  async putBlob(key: string, data: Buffer): Promise<void> {
    const value = await encodeBlob(data, this.#mac && { mac: this.#mac, name: key });
    await this.#conn.run('put blob', (c) => c.set(this.keys.blob(key), value));
  }

  /** Resolves once no chunk fetch is in flight, read-aheads included (tests wait on it). */
  async settled(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight.values()]);
  }

  async close(): Promise<void> {
    this.#spare.clear();
    await this.#conn.close();
    await this.#bulk?.close();
  }

  /** The manifest from memory, or Redis; misses are remembered briefly so a downloading layer's reads stay cheap. */
  async #manifest(key: string): Promise<Manifest | undefined> {
    const known = this.#manifests.get(key);
    if (known) return known;
    if ((this.#absentUntil.get(key) ?? 0) > Date.now()) return undefined;
    const m = await this.#fetchManifest(key);
    if (m) {
      // This node will read a large object from the cache: the bulk worker loads now (pull checks
      // every layer's manifest), so it is ready by the first sequential read instead of after its
      // first chunks. A few chunks are fetched by the first reads anyway: no worker for those.
      if (m.chunks > BULK_FROM_CHUNKS) void this.#bulk?.start();
      if (this.#manifests.size >= MAX_MANIFESTS) this.#manifests.delete(this.#manifests.keys().next().value as string);
      this.#manifests.set(key, m);
      this.#absentUntil.delete(key);
    } else {
      if (this.#absentUntil.size >= MAX_MANIFESTS) this.#absentUntil.clear();
      this.#absentUntil.set(key, Date.now() + NEGATIVE_TTL_MS);
    }
    return m;
  }

  async #fetchManifest(key: string): Promise<Manifest | undefined> {
    const text = await this.#conn.run('get manifest', (c) => c.get(this.keys.manifest(key)));
    if (text === null) return undefined;
    const d = decodeManifest(text, key, this.#mac);
    if (d.type === 'ok') return d.manifest;
    if (d.type === 'unverified') this.#unverified('manifest', key, d.reason);
    await this.#drop(key, d.type === 'unverified' ? d.reason : 'manifest malformed');
    return undefined;
  }

  /** A check a writer of Redis cannot forge failed: a metric and a log line (the caller drops it). */
  #unverified(kind: VerifiedKind, key: string, reason: string): void {
    this.#onVerificationFailure(kind);
    this.#log.warn({ key, source: 'content_cache', kind, reason }, 'content cache object failed verification; treating it as a miss');
  }

  /** One chunk, from memory or one shared GET; `bulk`: for a sequential reader (it will read all of it). */
  #chunk(key: string, m: Manifest, i: number, bulk: boolean): Promise<ChunkResult> {
    const ck = this.keys.chunk(key, m.chunkSizeBytes, i);
    const cached = this.#lru.get(ck);
    if (cached) return Promise.resolve({ type: 'ok', chunk: cached });
    let p = this.#inflight.get(ck);
    if (!p) {
      p = this.#limiter.run(() => this.#fetchChunk(ck, m, i, bulk)).finally(() => this.#inflight.delete(ck));
      this.#inflight.set(ck, p);
    }
    return p;
  }

  async #fetchChunk(ck: string, m: Manifest, i: number, bulk: boolean): Promise<ChunkResult> {
    if (bulk && this.#bulk) {
      const fetched = await this.#fetchBulk(this.#bulk, ck, m, i);
      if (fetched) return fetched;
    }
    const value = await this.#conn.run('get chunk', (c) => c.getBuffer(ck));
    if (value === null) return { type: 'missing' };
    const length = Math.min(m.chunkSizeBytes, m.size - i * m.chunkSizeBytes);
    // A signed chunk is inflated and hashed on a worker: the event loop keeps serving FUSE reads.
    const check = chunkCheck(m, i);
    const d = await decodeChunkOffThread(value, length, check);
    if (d.type === 'corrupt') return { type: 'corrupt', reason: `chunk ${i}: ${d.reason}`, unverified: m.v !== 1 };
    const chunk: Chunk = 'pieces' in check ? { data: d.data, pieces: { digests: check.pieces, checked: new Uint8Array(check.pieces.sha256.length) } } : { data: d.data };
    // Fetched ahead of a sequential reader, which will read all of it: its pieces are hashed off
    // the event loop now, so those reads copy bytes instead of hashing them in line.
    if (bulk && chunk.pieces) await checkPiecesAhead(chunk.data, chunk.pieces.digests, chunk.pieces.checked);
    this.#lru.set(ck, chunk);
    return { type: 'ok', chunk };
  }

  /**
   * One chunk through the bulk worker: fetched, decoded and checked there (v3: every piece; those
   * that matched are marked, so reads copy without hashing). Undefined when no worker runs.
   */
  async #fetchBulk(bulk: BulkChunkFetcher, ck: string, m: Manifest, i: number): Promise<ChunkResult | undefined> {
    const length = Math.min(m.chunkSizeBytes, m.size - i * m.chunkSizeBytes);
    const check = chunkCheck(m, i);
    const spare = this.#spare.take();
    if (spare) this.#sparesReturned++;
    const d = await bulk.fetch(ck, length, check, spare);
    if (d === undefined) return undefined;
    if (this.#bulkChunks++ === 0) this.#log.info({ source: 'content_cache', chunk_size_bytes: m.chunkSizeBytes }, 'content cache bulk reads: a sequential reader\'s chunks are fetched and checked on a worker thread');
    if (d.type === 'missing') return d;
    if (d.type === 'corrupt') return { type: 'corrupt', reason: `chunk ${i}: ${d.reason}`, unverified: m.v !== 1 };
    const chunk: Chunk = 'pieces' in check
      ? { data: d.data, pieces: { digests: check.pieces, checked: d.checked ?? new Uint8Array(check.pieces.sha256.length) } }
      : { data: d.data };
    chunk.recyclable = true;
    this.#lru.set(ck, chunk);
    return { type: 'ok', chunk };
  }

  /**
   * A chunk left the LRU: its memory, when the bulk worker's, is kept to move back to it with the
   * next fetch (a read still holding the chunk then finds it empty and fetches it again).
   */
  #recycle(chunk: Chunk): void {
    if (chunk.recyclable) this.#spare.keep(chunk.data.buffer);
  }

  /** Whether a read at `offset` continues the last one (the kernel sends a few reads at once, not quite in order). */
  #sequential(key: string, m: Manifest, offset: number): boolean {
    const lastEnd = this.#lastEnd.get(key);
    return lastEnd !== undefined && Math.abs(offset - lastEnd) <= m.chunkSizeBytes;
  }

  /**
   * After a read: remember where it ended and, for a sequential reader, warm the next chunks,
   * unawaited, and let go of the bulk chunk it has left behind.
   */
  #readAhead(key: string, m: Manifest, offset: number, end: number, first: number, last: number, sequential: boolean): void {
    const lastEnd = this.#lastEnd.get(key);
    if (this.#lastEnd.size >= MAX_MANIFESTS) this.#lastEnd.clear();
    this.#lastEnd.set(key, sequential && lastEnd !== undefined ? Math.max(lastEnd, end) : end);
    if (!sequential) return;
    // Two chunks behind (the kernel's reads stray by less than one): its memory goes back to the
    // worker to receive the chunks ahead, instead of filling the LRU with a file read once — each
    // new 4 MiB buffer that ends up here costs a garbage collection. A reader that comes back fetches it again.
    const behind = first >= BEHIND_CHUNKS ? this.keys.chunk(key, m.chunkSizeBytes, first - BEHIND_CHUNKS) : undefined;
    if (behind !== undefined && this.#lru.peek(behind)?.recyclable) this.#lru.delete(behind);
    for (let i = last + 1; i <= Math.min(m.chunks - 1, last + this.#o.readaheadChunks); i++) {
      this.#chunk(key, m, i, true).catch(() => {});
    }
  }

  /** Forget the object here and in Redis; the next download republishes it. */
  async #drop(key: string, reason: string): Promise<void> {
    const m = this.#manifests.get(key);
    this.#manifests.delete(key);
    const chunkPrefix = this.keys.chunk(key, m?.chunkSizeBytes ?? this.chunkSizeBytes, 0).replace(/0$/, '');
    this.#lru.deleteWhere((ck) => ck.startsWith(chunkPrefix));
    this.#log.warn({ key, source: 'redis', reason }, 'content cache object corrupt or incomplete; dropping it so it is republished');
    await this.#conn.run('drop manifest', (c) => c.del(this.keys.manifest(key))).catch((err: unknown) => {
      this.#log.warn({ key, source: 'redis', err: messageOf(err) }, 'content cache could not drop a corrupt object');
    });
  }
}

/** The bulk worker's fetcher, when the endpoint is one it can reach (standalone, plain TCP) and not turned off. */
function bulkFetcher(opts: RedisContentCacheOptions): BulkChunkFetcher | undefined {
  if (opts.bulkReads === false || opts.cluster || opts.tls || opts.addresses.length !== 1) return undefined;
  const address = parseRedisAddress(opts.addresses[0] as string);
  if (address.tls) return undefined;
  return new BulkChunkFetcher({ host: address.host, port: address.port, username: opts.username, password: opts.password, timeoutMs: opts.timeoutMs });
}
