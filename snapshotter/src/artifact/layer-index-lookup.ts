/**
 * The daemon's "registry artifact" step as one function: given the image reference and layer a
 * snapshot is prepared for (and the manifest digest when the labels carry it), return the layer's
 * published index bytes. References without a manifest digest are resolved once per `resolveTtlMs`.
 */
import { parseReference, type Platform } from '../registry/index.js';
import { artifactFinderFor } from './find-indexes.js';
import { LruMap } from '../util/lru-map.js';
import type { ArtifactRegistry } from './types.js';

/** What the lookup is asked for (the shape of the daemon's index request). */
export interface LayerIndexQuery {
  imageRef: string;
  layerDigest: string;
  manifestDigest?: string;
}

export interface LayerIndexLookupOptions {
  platform?: string | Platform;
  /** How long a tag's resolution to a manifest digest is trusted. */
  resolveTtlMs?: number;
  nowMs?: () => number;
}

/** Build the lookup; it shares the client's artifact cache with `findLayerIndex`. */
export function createLayerIndexLookup(
  client: ArtifactRegistry, opts: LayerIndexLookupOptions = {},
): (q: LayerIndexQuery, signal?: AbortSignal) => Promise<Buffer | undefined> {
  const resolved = new LruMap<string, { atMs: number; digest: Promise<string> }>(256);
  const ttlMs = opts.resolveTtlMs ?? 60_000;
  const now = opts.nowMs ?? Date.now;
  const manifestOf = (imageRef: string, signal?: AbortSignal): Promise<string> => {
    const hit = resolved.get(imageRef);
    if (hit !== undefined && now() - hit.atMs < ttlMs) return hit.digest;
    const digest = client.resolveImage(imageRef, { ...(opts.platform ? { platform: opts.platform } : {}), ...(signal ? { signal } : {}) }).then((r) => r.descriptor.digest);
    const entry = { atMs: now(), digest };
    digest.catch(() => {
      if (resolved.get(imageRef) === entry) resolved.delete(imageRef);
    });
    resolved.set(imageRef, entry);
    return digest;
  };
  return async (q, signal) => {
    const ref = parseReference(q.imageRef);
    const manifestDigest = q.manifestDigest ?? (await manifestOf(q.imageRef, signal));
    return artifactFinderFor(client).findLayerIndex(ref, manifestDigest, q.layerDigest, signal);
  };
}
