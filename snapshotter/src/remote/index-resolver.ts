/**
 * Finding a layer's clip index, cheapest source first: this node's index cache, the ContentCache
 * (indexed on another node), the registry's index artifact, and — when allowed — building it now
 * from the layer itself. One resolution per layer at a time; every result is validated by decoding.
 * An index is *trusted* only when built here or checked against its completed layer
 * (`index-check.ts`); the local cache remembers which ones are, and never serves a quarantined one.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildIndex, decodeIndexOffThread, encodeIndex, type ClipIndexReader, type ClipLimits, type CompressedObserver } from '../clip/index.js';
import type { ContentCache } from '../contentcache/index.js';
import { findClipError, isKind, messageOf, notFound } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { parseReference, type RegistryClient } from '../registry/index.js';
import { LruMap } from '../util/lru-map.js';
import type { LayerLedger, LayerRef, QuarantineList } from '../storage/index.js';
import {
  ATTR_CLIP_BYTES, ATTR_CLIP_BYTES_COMPRESSED, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_SOURCE, SPAN_INDEX_BUILD, withSpan,
} from '../telemetry/index.js';

/** Where an index came from (span attribute `clip.index.source`, log field `source`). */
export type IndexSource = 'local' | 'content_cache' | 'artifact' | 'built';

/** The layer whose index is wanted. */
export interface IndexRequest {
  imageRef: string;
  layerDigest: string;
  manifestDigest?: string;
}

/** Finds the index blob of a layer in the registry's index artifact, if one was pushed. */
export type ArtifactLookup = (req: IndexRequest, signal?: AbortSignal) => Promise<Buffer | undefined>;

export interface IndexResolverOptions {
  /** `<root>/cache/indexes`. */
  cacheDir: string;
  contentCache: ContentCache;
  registry: Pick<RegistryClient, 'fetchBlob'>;
  buildMissing: boolean;
  /**
   * Take indexes this node did not build (ContentCache, registry artifacts)? Default true; false =
   * build every index here (`[index] accept_foreign_indexes`): nothing but the layer decides what a
   * container sees, at the price of downloading each layer whole before its first mount.
   */
  acceptForeign?: boolean;
  /** Indexes found not to describe their layer (`index` entries, by digest): a miss from every source. */
  quarantine?: Pick<QuarantineList, 'has'>;
  /** Bounds on layers it builds from and indexes it decodes (`[index] max_*`). */
  limits?: Partial<ClipLimits>;
  findArtifact?: ArtifactLookup;
  /**
   * Keeps the uncompressed layer a build had to download: the file is written in `spoolDir` and
   * handed over once the index (and so the diffID) is known.
   */
  keepLayer?: { spoolDir: string; adopt(ref: LayerRef, tmpPath: string): Promise<void> };
  /** A fresh observer per build, e.g. the gzip checkpoint recorder (`[index] gzip_checkpoints`). */
  compressedObserver?: () => CompressedObserver | undefined;
  /** Counts the compressed bytes an index build downloads against the layer (status, metrics). */
  ledger?: Pick<LayerLedger, 'fetched'>;
  log?: Logger;
}

/** A decoded, validated index and where it was found. */
export interface ResolvedIndex {
  index: ClipIndexReader;
  bytes: Buffer;
  source: IndexSource;
  /** sha256 hex of `bytes`. */
  digest: string;
  /** Built on this node, or checked against its completed layer: needs no check. */
  trusted: boolean;
  /** Found by a look-up run ahead of its Prepare (`prefetch`). */
  ahead?: boolean;
  /**
   * Settles once the index is in this node's cache (what a restart re-mounts from); absent when it
   * was read from there. `resolve` answers before the write is done, so the caller can mount
   * meanwhile: a snapshot must not be recorded before this resolves (rejects: not cached).
   */
  saved?: Promise<void>;
}

const HEX = /^sha256:([0-9a-f]{64})$/;
let spoolSeq = 0;

/** Look-ups run ahead of their Prepare at once (`prefetch`). */
const PREFETCH_CONCURRENCY = 4;
/** Results of look-ups run ahead that wait for their Prepare: at most this many, this long. */
const MAX_AHEAD = 256;
const AHEAD_TTL_MS = 60_000;

/** The ContentCache key of a layer's index. */
export const indexCacheKey = (layerDigest: string): string => `clip-index/${layerDigest}`;

/** sha256 hex of an index's bytes: names it in the quarantine list. */
export const indexDigestOf = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** Resolves clip indexes for lazily mounted layers. */
export class IndexResolver {
  readonly #o: IndexResolverOptions;
  readonly #log: Logger;
  readonly #inflight = new Map<string, Promise<ResolvedIndex>>();
  /** Look-ups run ahead of their Prepare, by layer digest: running or done, until `resolve` takes them. */
  readonly #ahead = new LruMap<string, Promise<ResolvedIndex | undefined>>(MAX_AHEAD);
  /** Look-ups waiting for a free prefetch slot, by layer digest. */
  readonly #queued = new Map<string, IndexRequest>();
  #prefetching = 0;
  /**
   * Writes to the local cache still running, by layer digest (`resolve` answers before its write is
   * done): every read and later write of that layer's entry waits for them, so this process never
   * sees the entry half-written or missing, and writes land in the order they were made.
   */
  readonly #writing = new Map<string, Promise<void>>();

  constructor(o: IndexResolverOptions) {
    this.#o = o;
    this.#log = o.log ?? silentLogger();
  }

  /** The index of a layer; rejects `not_found` when no source has it and building is off. */
  resolve(req: IndexRequest, signal?: AbortSignal): Promise<ResolvedIndex> {
    const running = this.#inflight.get(req.layerDigest);
    if (running) return running;
    this.#queued.delete(req.layerDigest);
    const ahead = this.#ahead.get(req.layerDigest);
    this.#ahead.delete(req.layerDigest);
    const p = (ahead ? this.#takeAhead(ahead, req, signal) : this.#resolve(req, signal)).finally(() => this.#inflight.delete(req.layerDigest));
    this.#inflight.set(req.layerDigest, p);
    return p;
  }

  /**
   * Start looking up the indexes of layers whose Prepare is still to come (the other layers of an
   * image whose first layer is being prepared), a few at a time, from every source but a build:
   * no layer is downloaded for a Prepare that may never come. `resolve` takes the result; one
   * not taken within a minute is dropped.
   */
  prefetch(reqs: readonly IndexRequest[]): void {
    for (const req of reqs) {
      if (this.#inflight.has(req.layerDigest) || this.#ahead.get(req.layerDigest) !== undefined || this.#queued.has(req.layerDigest)) continue;
      this.#queued.set(req.layerDigest, req);
    }
    this.#pump();
  }

  #pump(): void {
    while (this.#prefetching < PREFETCH_CONCURRENCY && this.#queued.size > 0) {
      const [digest, req] = this.#queued.entries().next().value as [string, IndexRequest];
      this.#queued.delete(digest);
      this.#prefetching++;
      const p = this.#resolve(req, undefined, false);
      this.#ahead.set(digest, p);
      p.catch((err: unknown) => this.#log.debug({ layer: digest, err: messageOf(err) }, 'index look-up ahead of its Prepare failed'))
        .finally(() => {
          this.#prefetching--;
          setTimeout(() => {
            if (this.#ahead.get(digest) === p) this.#ahead.delete(digest);
          }, AHEAD_TTL_MS).unref();
          this.#pump();
        });
    }
  }

  /**
   * A look-up run ahead, for its Prepare: used when it found an index that is still not
   * quarantined (an index check may have failed since); otherwise the ordinary resolution runs.
   */
  async #takeAhead(ahead: Promise<ResolvedIndex | undefined>, req: IndexRequest, signal?: AbortSignal): Promise<ResolvedIndex> {
    const found = await ahead.catch(() => undefined);
    if (found && !this.#o.quarantine?.has('index', found.digest)) return { ...found, ahead: true };
    return this.#resolve(req, signal);
  }

  /** The index from this node's cache only (no network): what a restart re-mounts from. */
  async local(layerDigest: string): Promise<ResolvedIndex | undefined> {
    await this.#writesDone(layerDigest);
    const path = this.#path(layerDigest);
    const bytes = await readFile(path).catch(() => undefined);
    if (!bytes) return undefined;
    const digest = indexDigestOf(bytes);
    if (this.#o.quarantine?.has('index', digest)) {
      this.#log.warn({ layer: layerDigest, path, index_digest: digest }, 'discarding quarantined cached index');
      await this.#forget(layerDigest);
      return undefined;
    }
    try {
      const trusted = (await readFile(this.#verifiedPath(layerDigest), 'utf8').catch(() => '')).trim() === digest;
      return { index: await decodeIndexOffThread(bytes, this.#o.limits), bytes, source: 'local', digest, trusted };
    } catch (err) {
      this.#log.warn({ layer: layerDigest, path, err: messageOf(err) }, 'discarding corrupt cached index');
      await this.#forget(layerDigest);
      return undefined;
    }
  }

  /**
   * The index of a layer with `digest` was checked against the completed layer and matched: the
   * local cache marks it trusted (if it still holds that index), so a restart does not check it again.
   */
  async verified(layerDigest: string, digest: string): Promise<void> {
    await this.#writesDone(layerDigest);
    const cached = await readFile(this.#path(layerDigest)).catch(() => undefined);
    if (!cached || indexDigestOf(cached) !== digest) return;
    await this.#writeAtomic(this.#verifiedPath(layerDigest), Buffer.from(`${digest}\n`));
  }

  /**
   * The index with digest `forged` did not describe its layer: this node forgets it and keeps
   * `trueBytes` (rebuilt from the verified layer) instead, trusted, here and in the ContentCache,
   * so later mounts and a restart read the layer as it is.
   */
  async replace(layerDigest: string, forged: string, trueBytes: Buffer): Promise<void> {
    await this.#writesDone(layerDigest);
    const cached = await readFile(this.#path(layerDigest)).catch(() => undefined);
    if (cached && indexDigestOf(cached) === forged) await this.#forget(layerDigest);
    await this.#saveLocal(layerDigest, trueBytes, true);
    await this.#o.contentCache.putBlob(indexCacheKey(layerDigest), trueBytes).catch((err: unknown) =>
      this.#log.warn({ layer: layerDigest, err: messageOf(err) }, 'replacing the index in the ContentCache failed'),
    );
  }

  #resolve(req: IndexRequest, signal?: AbortSignal): Promise<ResolvedIndex>;
  #resolve(req: IndexRequest, signal: AbortSignal | undefined, build: false): Promise<ResolvedIndex | undefined>;
  async #resolve(req: IndexRequest, signal?: AbortSignal, build = true): Promise<ResolvedIndex | undefined> {
    const local = await this.local(req.layerDigest);
    if (local) return local;
    const foreign = this.#o.acceptForeign !== false;
    const found = (foreign ? (await this.#fromContentCache(req)) ?? (await this.#fromArtifact(req, signal)) : undefined) ?? (build ? await this.#build(req, signal) : undefined);
    if (!found) return undefined;
    const saved = this.#saveLocal(req.layerDigest, found.bytes, found.trusted);
    saved.catch(() => undefined); // the caller awaits it; this only keeps a failure seen early from going unhandled
    if (found.source !== 'content_cache') {
      this.#o.contentCache.putBlob(indexCacheKey(req.layerDigest), found.bytes).catch((err: unknown) =>
        this.#log.warn({ layer: req.layerDigest, err: messageOf(err) }, 'publishing index to the ContentCache failed'),
      );
    }
    this.#log.info({ layer: req.layerDigest, diff_id: found.index.meta.diffId, source: found.source, bytes: found.bytes.length }, 'index resolved');
    return { ...found, saved };
  }

  async #fromContentCache(req: IndexRequest): Promise<ResolvedIndex | undefined> {
    try {
      const bytes = await this.#o.contentCache.getBlob(indexCacheKey(req.layerDigest));
      return bytes && (await this.#decoded(bytes, 'content_cache', req));
    } catch (err) {
      this.#log.warn({ layer: req.layerDigest, source: 'content_cache', err: messageOf(err) }, 'index lookup failed');
      return undefined;
    }
  }

  async #fromArtifact(req: IndexRequest, signal?: AbortSignal): Promise<ResolvedIndex | undefined> {
    if (!this.#o.findArtifact) return undefined;
    try {
      const bytes = await this.#o.findArtifact(req, signal);
      return bytes && (await this.#decoded(bytes, 'artifact', req));
    } catch (err) {
      // A missing or broken artifact is not fatal: the index can still be built.
      this.#log.warn({ layer: req.layerDigest, source: 'artifact', err: messageOf(err) }, 'index artifact lookup failed');
      return undefined;
    }
  }

  async #build(req: IndexRequest, signal?: AbortSignal): Promise<ResolvedIndex> {
    if (!this.#o.buildMissing) {
      throw notFound('CLIP_INDEX_NOT_FOUND', `clip index of layer ${req.layerDigest} (${req.imageRef}; [index] build_missing is off)`);
    }
    // The layer is downloaded whole here: registry traffic like any other, so searchable by clip.source.
    return withSpan(SPAN_INDEX_BUILD, { [ATTR_CLIP_SOURCE]: 'registry', [ATTR_CLIP_LAYER_DIGEST]: req.layerDigest }, async (span) => {
      const built = await this.#buildFromLayer(req, signal);
      span.setAttributes({
        [ATTR_CLIP_LAYER_DIFF_ID]: built.resolved.index.meta.diffId,
        [ATTR_CLIP_BYTES]: built.resolved.index.meta.uncompressedSize,
        [ATTR_CLIP_BYTES_COMPRESSED]: built.compressedBytes,
      });
      return built.resolved;
    });
  }

  async #buildFromLayer(req: IndexRequest, signal?: AbortSignal): Promise<{ resolved: ResolvedIndex; compressedBytes: number }> {
    const started = Date.now();
    const { domain, repository } = parseReference(req.imageRef);
    const blob = await this.#o.registry.fetchBlob({ domain, repository }, req.layerDigest, signal ? { signal } : {});
    const keep = this.#o.keepLayer;
    const spool = keep ? join(keep.spoolDir, `index-${process.pid}-${++spoolSeq}.partial`) : undefined;
    const file = spool ? await open(spool, 'w') : undefined;
    try {
      const observer = this.#o.compressedObserver?.();
      const built = await buildIndex(blob.stream, {
        compressedDigest: req.layerDigest,
        ...(this.#o.limits ? { limits: this.#o.limits } : {}),
        ...(observer ? { compressedObserver: observer } : {}),
        ...(signal ? { signal } : {}),
        ...(file ? { uncompressedSink: { write: (chunk: Buffer) => file.write(chunk) } } : {}),
      });
      const bytes = encodeIndex(built);
      const ref: LayerRef = {
        ref: req.imageRef,
        digest: req.layerDigest,
        diffId: built.meta.diffId,
        uncompressedSize: built.meta.uncompressedSize,
        ...(built.gzipCheckpoints ? { gzipCheckpoints: built.gzipCheckpoints } : {}),
        ...(built.zstdFrames ? { zstdFrames: built.zstdFrames } : {}),
      };
      const hex = HEX.exec(built.meta.diffId)?.[1];
      if (hex) this.#o.ledger?.fetched(hex, 'index_build', blob.size ?? 0, ref);
      this.#log.info({ layer: req.layerDigest, diff_id: built.meta.diffId, bytes: blob.size, duration_ms: Date.now() - started }, 'built index from the layer');
      if (file && spool && keep) {
        await file.sync();
        await file.close();
        await keep.adopt(ref, spool).catch((err: unknown) => this.#log.warn({ layer: req.layerDigest, err: messageOf(err) }, 'could not keep the indexed layer'));
      }
      return { resolved: { index: await decodeIndexOffThread(bytes, this.#o.limits), bytes, source: 'built', digest: indexDigestOf(bytes), trusted: true }, compressedBytes: blob.size ?? 0 };
    } finally {
      await file?.close().catch(() => undefined);
      if (spool) await rm(spool, { force: true });
    }
  }

  async #decoded(bytes: Buffer, source: IndexSource, req: IndexRequest): Promise<ResolvedIndex | undefined> {
    const digest = indexDigestOf(bytes);
    if (this.#o.quarantine?.has('index', digest)) {
      this.#log.warn({ layer: req.layerDigest, source, index_digest: digest, code: 'CLIP_INDEX_MISMATCH' }, 'quarantined index ignored');
      return undefined;
    }
    try {
      const index = await decodeIndexOffThread(bytes, this.#o.limits);
      if (index.meta.compressedDigest !== req.layerDigest && index.meta.diffId !== req.layerDigest) {
        this.#log.warn({ layer: req.layerDigest, source, indexed: index.meta.compressedDigest }, 'index is for another layer; ignored');
        return undefined;
      }
      return { index, bytes, source, digest, trusted: false };
    } catch (err) {
      // Malformed, over a bound or too slow to check: a miss, the next source (or a build) answers instead.
      const timedOut = findClipError(err)?.code === 'CLIP_INDEX_DECODE_TIMEOUT';
      if (!isKind(err, 'data_corrupt') && !isKind(err, 'invalid_argument') && !timedOut) throw err;
      this.#log.warn({ layer: req.layerDigest, source, err: messageOf(err), code: findClipError(err)?.code }, 'corrupt index ignored');
      return undefined;
    }
  }

  #path(layerDigest: string): string {
    const hex = HEX.exec(layerDigest)?.[1] ?? layerDigest.replace(/[^0-9a-zA-Z]/g, '_');
    return join(this.#o.cacheDir, `${hex}.clip`);
  }

  /** Where the digest of a trusted cached index is kept (absent or another digest: not trusted). */
  #verifiedPath(layerDigest: string): string {
    return `${this.#path(layerDigest)}.verified`;
  }

  /** Settles once the writes of `layerDigest`'s entry started so far are done (failed or not). */
  async #writesDone(layerDigest: string): Promise<void> {
    await this.#writing.get(layerDigest)?.catch(() => undefined);
  }

  /** Write a layer's entry after the writes of it already running (see `#writing`). */
  #saveLocal(layerDigest: string, bytes: Buffer, trusted: boolean): Promise<void> {
    const p = this.#writesDone(layerDigest).then(() => this.#writeLocal(layerDigest, bytes, trusted));
    this.#writing.set(layerDigest, p);
    const forget = (): void => {
      if (this.#writing.get(layerDigest) === p) this.#writing.delete(layerDigest);
    };
    p.then(forget, forget);
    return p;
  }

  async #writeLocal(layerDigest: string, bytes: Buffer, trusted: boolean): Promise<void> {
    await mkdir(this.#o.cacheDir, { recursive: true });
    // The mark first goes: a crash between the two writes leaves an index that is checked again.
    await rm(this.#verifiedPath(layerDigest), { force: true });
    await this.#writeAtomic(this.#path(layerDigest), bytes);
    if (trusted) await this.#writeAtomic(this.#verifiedPath(layerDigest), Buffer.from(`${indexDigestOf(bytes)}\n`));
  }

  async #writeAtomic(path: string, bytes: Buffer): Promise<void> {
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, bytes);
    await rename(tmp, path);
  }

  async #forget(layerDigest: string): Promise<void> {
    await rm(this.#verifiedPath(layerDigest), { force: true });
    await rm(this.#path(layerDigest), { force: true });
  }
}
