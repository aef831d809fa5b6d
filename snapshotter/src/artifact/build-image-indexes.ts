/**
 * Index every layer of one image manifest: resolve it, reuse what an existing artifact already
 * holds (each reused index is fetched, decoded and checked against the layer), and build the rest
 * from streamed layer blobs with bounded concurrency. Nothing is pushed here.
 */
import { Readable } from 'node:stream';
import { buildIndex, decodeIndex, encodeIndex, type ClipLimits, type CompressedObserver } from '../clip/index.js';
import { dataCorrupt, invalidArgument, isKind, messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { toRepositoryRef, type Descriptor, type ImageReference, type Platform, type RepositoryRef } from '../registry/index.js';
import { ClipArtifactFinder } from './artifact-finder.js';
import { boundedMap } from '../util/bounded-map.js';
import { repoName } from './find-indexes.js';
import { readDiffIds } from './image-config.js';
import { MAX_INDEX_BLOB_BYTES } from './media-types.js';
import { decodeCheckpointTable, isPackedTable, packWindows } from '../zran/index.js';
import type { ArtifactRegistry, IndexArtifact, IndexProgress, ImageIndexes, LayerIndexResult } from './types.js';

export interface BuildImageIndexesOptions {
  /** Layers indexed at once (default 3). */
  concurrency?: number;
  /** Platform picked from a multi-platform image; default the client's. */
  platform?: string | Platform;
  signal?: AbortSignal;
  onProgress?: (e: IndexProgress) => void;
  /** Where existing artifacts are looked up; default a fresh finder, so the answer is current. */
  finder?: ClipArtifactFinder;
  logger?: Logger;
  /** A fresh observer per layer build, e.g. the gzip checkpoint recorder (`[index] gzip_checkpoints`). */
  compressedObserver?: () => CompressedObserver | undefined;
  /** Bounds on layers and indexes (`[index] max_*`); default `DEFAULT_CLIP_LIMITS`. */
  limits?: Partial<ClipLimits>;
}

interface LayerJob {
  repo: RepositoryRef;
  layer: Descriptor;
  index: number;
  diffId: string;
  existing: readonly IndexArtifact[];
}

/** Build (or reuse) the clip index of every layer of `imageRef`'s platform manifest. */
export async function buildImageIndexes(client: ArtifactRegistry, imageRef: string | ImageReference, opts: BuildImageIndexesOptions = {}): Promise<ImageIndexes> {
  const concurrency = opts.concurrency ?? 3;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw invalidArgument('CLIP_ARTIFACT_BAD_CONCURRENCY', `concurrency ${concurrency}: must be a positive integer`);
  const signal = opts.signal;
  const image = await client.resolveImage(imageRef, { ...(opts.platform ? { platform: opts.platform } : {}), ...(signal ? { signal } : {}) });
  const repo = toRepositoryRef(image.reference);
  const diffIds = await readDiffIds(client, image, signal);
  const existing = await (opts.finder ?? new ClipArtifactFinder(client)).artifacts(repo, image.descriptor.digest, signal);
  const layers = image.manifest.layers;
  opts.onProgress?.({ type: 'image', subject: image.descriptor, layers });
  const ctx = { client, log: opts.logger ?? silentLogger(), onProgress: opts.onProgress, compressedObserver: opts.compressedObserver, limits: opts.limits ?? {} };
  const results = await boundedMap(layers, concurrency, (layer, index, s) =>
    indexLayer(ctx, { repo, layer, index, diffId: diffIds[index] as string, existing }, s), signal);
  return { repo: repoName(repo), subject: image.descriptor, layers: results, complete: completeArtifact(existing, results) };
}

interface Ctx {
  client: ArtifactRegistry;
  log: Logger;
  onProgress: ((e: IndexProgress) => void) | undefined;
  compressedObserver: (() => CompressedObserver | undefined) | undefined;
  limits: Partial<ClipLimits>;
}

async function indexLayer(ctx: Ctx, job: LayerJob, signal: AbortSignal): Promise<LayerIndexResult> {
  const { layer, index } = job;
  ctx.onProgress?.({ type: 'layer-start', layer: index, digest: layer.digest, totalBytes: layer.size });
  const result = (await reuseLayer(ctx, job, signal)) ?? (await buildLayer(ctx, job, signal));
  ctx.onProgress?.({ type: 'layer-done', layer: index, digest: layer.digest, reused: result.reused, entries: result.entries, indexBytes: result.index.length });
  return result;
}

/** The index an existing artifact holds for this layer, if it decodes and matches the layer. */
async function reuseLayer(ctx: Ctx, job: LayerJob, signal: AbortSignal): Promise<LayerIndexResult | undefined> {
  const { layer, diffId } = job;
  const found = newestListing(job.existing, layer.digest);
  if (found === undefined) return undefined;
  try {
    const index = await ctx.client.fetchBlobBytes(job.repo, found.digest, { maxBytes: MAX_INDEX_BLOB_BYTES, signal });
    const decoded = decodeIndex(index, ctx.limits);
    const meta = decoded.meta;
    if (meta.compressedDigest !== layer.digest || meta.diffId !== diffId) {
      throw dataCorrupt('CLIP_ARTIFACT_DIFF_ID_MISMATCH', `index ${found.digest} describes ${meta.compressedDigest} (${meta.diffId})`);
    }
    // A reused index's window pack is listed again in any new artifact, so it is fetched (and checked).
    const table = decoded.gzipCheckpoints;
    const pack = table && isPackedTable(table) ? decodeCheckpointTable(table).pack : undefined;
    const windowPack = pack ? await ctx.client.fetchBlobBytes(job.repo, pack.digest, { maxBytes: MAX_INDEX_BLOB_BYTES, signal }) : undefined;
    return { digest: layer.digest, diffId, size: layer.size, index, windowPack, entries: meta.entryCount, reused: true };
  } catch (err) {
    if (!isKind(err, 'data_corrupt') && !isKind(err, 'not_found') && !isKind(err, 'invalid_argument')) throw err;
    ctx.log.warn({ layer: layer.digest, key: found.digest, err: messageOf(err) }, 'published clip index unusable, rebuilding it');
    return undefined;
  }
}

/** Stream the layer blob through the index builder. */
async function buildLayer(ctx: Ctx, job: LayerJob, signal: AbortSignal): Promise<LayerIndexResult> {
  const { layer, index: i } = job;
  const blob = await ctx.client.fetchBlob(job.repo, layer.digest, { size: layer.size, signal });
  const counted = Readable.from(countBytes(blob.stream, (bytes) =>
    ctx.onProgress?.({ type: 'layer-bytes', layer: i, digest: layer.digest, bytes, totalBytes: layer.size })));
  const observer = ctx.compressedObserver?.();
  const built = await buildIndex(counted, { compressedDigest: layer.digest, signal, logger: ctx.log, limits: ctx.limits, ...(observer ? { compressedObserver: observer } : {}) });
  if (built.meta.diffId !== job.diffId) {
    throw dataCorrupt('CLIP_ARTIFACT_DIFF_ID_MISMATCH', `layer ${layer.digest}: uncompressed digest ${built.meta.diffId}, image config says ${job.diffId}`);
  }
  // Published indexes keep gzip windows in a separate pack that a cold node range-reads.
  const packed = built.gzipCheckpoints && !isPackedTable(built.gzipCheckpoints) ? packWindows(built.gzipCheckpoints) : undefined;
  const index = encodeIndex(packed ? { ...built, gzipCheckpoints: packed.table } : built);
  return { digest: layer.digest, diffId: built.meta.diffId, size: layer.size, index, windowPack: packed?.pack, entries: built.meta.entryCount, reused: false };
}

async function* countBytes(stream: Readable, report: (bytes: number) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    report(bytes);
    yield chunk;
  }
}

function newestListing(existing: readonly IndexArtifact[], layerDigest: string): Descriptor | undefined {
  for (let i = existing.length - 1; i >= 0; i--) {
    const hit = existing[i]?.layers.get(layerDigest);
    if (hit !== undefined) return hit.blob;
  }
  return undefined;
}

/** An existing artifact that lists exactly the indexes reused for every layer. */
function completeArtifact(existing: readonly IndexArtifact[], layers: readonly LayerIndexResult[]): Descriptor | undefined {
  if (!layers.every((l) => l.reused)) return undefined;
  const covers = (a: IndexArtifact): boolean => layers.every((l) => a.layers.get(l.digest)?.blob.digest === newestListing(existing, l.digest)?.digest);
  return [...existing].reverse().find(covers)?.descriptor;
}
