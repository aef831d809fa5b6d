/**
 * Finds clip index artifacts for image manifests. The daemon asks once per layer while preparing
 * snapshots, so lookups are cached per subject (one referrers request and one manifest GET per
 * artifact, shared by concurrent callers); a cached answer that lacks a wanted layer is refreshed
 * once it is older than `refreshAfterMs`, which is how a freshly pushed artifact gets noticed.
 */
import { isKind } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { toRepositoryRef, type Descriptor, type RepositoryRef } from '../registry/index.js';
import { LruMap } from '../util/lru-map.js';
import {
  ANNOTATION_INDEX_VERSION, ANNOTATION_LAYER_DIFF_ID, ANNOTATION_LAYER_DIGEST, CLIP_INDEX_ARTIFACT_TYPE, CLIP_INDEX_MEDIA_TYPE,
  INDEX_FORMAT_VERSION, MAX_INDEX_BLOB_BYTES,
} from './media-types.js';
import type { ArtifactRegistry, IndexArtifact, LayerIndexDescriptor } from './types.js';

export interface ArtifactFinderOptions {
  /** Subjects whose artifact lists stay in memory. */
  maxSubjects?: number;
  /** A cached lookup that lacks a wanted layer is repeated when older than this. */
  refreshAfterMs?: number;
  nowMs?: () => number;
  logger?: Logger;
}

interface Lookup {
  atMs: number;
  artifacts: Promise<IndexArtifact[]>;
}

type RepoArg = string | RepositoryRef;

/** Cached discovery of clip index artifacts through the referrers API (or its tag fallback). */
export class ClipArtifactFinder {
  #client: ArtifactRegistry;
  #cache: LruMap<string, Lookup>;
  #refreshAfterMs: number;
  #now: () => number;
  #log: Logger;

  constructor(client: ArtifactRegistry, opts: ArtifactFinderOptions = {}) {
    this.#client = client;
    this.#cache = new LruMap(opts.maxSubjects ?? 128);
    this.#refreshAfterMs = opts.refreshAfterMs ?? 30_000;
    this.#now = opts.nowMs ?? Date.now;
    this.#log = opts.logger ?? silentLogger();
  }

  /** The subject's clip index artifacts, oldest first as the registry lists them. */
  async artifacts(repo: RepoArg, subjectDigest: string, signal?: AbortSignal): Promise<IndexArtifact[]> {
    const r = toRepositoryRef(repo);
    const key = cacheKey(r, subjectDigest);
    let entry = this.#cache.get(key);
    if (entry === undefined) {
      entry = { atMs: this.#now(), artifacts: this.#lookup(r, subjectDigest) };
      entry.artifacts.catch(() => {
        if (this.#cache.get(key) === entry) this.#cache.delete(key);
      });
      this.#cache.set(key, entry);
    }
    return abortable(entry.artifacts, signal);
  }

  /** Where one layer's index lives (the newest artifact that lists it wins), or undefined. */
  async layerIndexDescriptor(repo: RepoArg, subjectDigest: string, layerDigest: string, signal?: AbortSignal): Promise<LayerIndexDescriptor | undefined> {
    const found = pickLayer(await this.artifacts(repo, subjectDigest, signal), layerDigest);
    if (found !== undefined) return found;
    const key = cacheKey(toRepositoryRef(repo), subjectDigest);
    const entry = this.#cache.get(key);
    if (entry === undefined || this.#now() - entry.atMs < this.#refreshAfterMs) return undefined;
    this.#cache.delete(key);
    return pickLayer(await this.artifacts(repo, subjectDigest, signal), layerDigest);
  }

  /** Fetch one layer's encoded index (digest-verified); undefined when no artifact has it. */
  async findLayerIndex(repo: RepoArg, subjectDigest: string, layerDigest: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    const d = await this.layerIndexDescriptor(repo, subjectDigest, layerDigest, signal);
    if (d === undefined) return undefined;
    try {
      return await this.#client.fetchBlobBytes(repo, d.blob.digest, { maxBytes: MAX_INDEX_BLOB_BYTES, ...(signal ? { signal } : {}) });
    } catch (err) {
      if (!isKind(err, 'not_found')) throw err;
      this.#log.warn({ layer: layerDigest, key: d.blob.digest, source: 'registry' }, 'clip index blob listed by an artifact is missing');
      this.forget(repo, subjectDigest);
      return undefined;
    }
  }

  /** Drop the cached lookup of a subject, e.g. after pushing a new artifact for it. */
  forget(repo: RepoArg, subjectDigest: string): void {
    this.#cache.delete(cacheKey(toRepositoryRef(repo), subjectDigest));
  }

  async #lookup(repo: RepositoryRef, subjectDigest: string): Promise<IndexArtifact[]> {
    const referrers = await this.#client.findReferrers(repo, subjectDigest, CLIP_INDEX_ARTIFACT_TYPE);
    const out: IndexArtifact[] = [];
    for (const d of referrers) {
      const artifact = await this.#readArtifact(repo, subjectDigest, d);
      if (artifact !== undefined) out.push(artifact);
    }
    return out;
  }

  async #readArtifact(repo: RepositoryRef, subjectDigest: string, d: Descriptor): Promise<IndexArtifact | undefined> {
    let fetched;
    try {
      fetched = await this.#client.fetchManifest(repo, d.digest);
    } catch (err) {
      // A referrers tag can outlive a deleted artifact; the others are still usable.
      if (isKind(err, 'not_found')) return undefined;
      throw err;
    }
    if (fetched.type !== 'manifest') return undefined;
    const m = fetched.manifest;
    if (m.subject?.digest !== subjectDigest || (m.artifactType ?? d.artifactType) !== CLIP_INDEX_ARTIFACT_TYPE) {
      this.#log.warn({ key: d.digest, source: 'registry' }, 'ignoring a referrer that is not a clip index artifact of this image');
      return undefined;
    }
    const descriptor: Descriptor = { ...fetched.descriptor, artifactType: CLIP_INDEX_ARTIFACT_TYPE };
    const layers = new Map<string, LayerIndexDescriptor>();
    for (const blob of m.layers) {
      const layerDigest = readableLayer(blob);
      if (layerDigest !== undefined) layers.set(layerDigest, { layerDigest, diffId: blob.annotations?.[ANNOTATION_LAYER_DIFF_ID], blob, artifact: descriptor });
    }
    return { descriptor, layers };
  }
}

/** The layer digest an index blob is for, if this build can read the blob. */
function readableLayer(blob: Descriptor): string | undefined {
  if (blob.mediaType !== CLIP_INDEX_MEDIA_TYPE || blob.size > MAX_INDEX_BLOB_BYTES) return undefined;
  const version = blob.annotations?.[ANNOTATION_INDEX_VERSION];
  if (version !== undefined && !(Number(version) <= INDEX_FORMAT_VERSION)) return undefined;
  return blob.annotations?.[ANNOTATION_LAYER_DIGEST];
}

function pickLayer(artifacts: readonly IndexArtifact[], layerDigest: string): LayerIndexDescriptor | undefined {
  for (let i = artifacts.length - 1; i >= 0; i--) {
    const hit = artifacts[i]?.layers.get(layerDigest);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

const cacheKey = (r: RepositoryRef, subjectDigest: string): string => `${r.domain}/${r.repository}@${subjectDigest}`;

/** Wait for a shared promise, giving up (without cancelling it) when this caller's signal fires. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
