/** Publishing: one artifact per image manifest, one annotated blob per layer index. */
import type { Descriptor, RepositoryRef } from '../registry/index.js';
import {
  ANNOTATION_INDEX_VERSION, ANNOTATION_LAYER_DIFF_ID, ANNOTATION_LAYER_DIGEST, CLIP_INDEX_ARTIFACT_TYPE, CLIP_INDEX_MEDIA_TYPE,
  CLIP_WINDOW_PACK_MEDIA_TYPE, INDEX_FORMAT_VERSION,
} from './media-types.js';
import { artifactFinderFor } from './find-indexes.js';
import type { ArtifactRegistry } from './types.js';

/** What is pushed for one layer. */
export interface LayerIndexBlob {
  digest: string;
  diffId: string;
  index: Buffer;
  /** Pushed beside the index (same repository) when its checkpoint table keeps windows outside. */
  windowPack?: Buffer | undefined;
}

/**
 * Push the artifact referring to `subject` (blobs already in the registry are not uploaded again)
 * and keep the referrers tag fallback current; returns the artifact manifest's descriptor.
 */
export async function pushIndexArtifact(
  client: ArtifactRegistry, repo: string | RepositoryRef, subject: Descriptor, layers: readonly LayerIndexBlob[], opts: { signal?: AbortSignal } = {},
): Promise<Descriptor> {
  const version = String(INDEX_FORMAT_VERSION);
  const pushed = await client.pushArtifact({
    repo,
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    artifactType: CLIP_INDEX_ARTIFACT_TYPE,
    blobs: layers.flatMap((l) => [
      {
        mediaType: CLIP_INDEX_MEDIA_TYPE,
        data: l.index,
        annotations: { [ANNOTATION_LAYER_DIGEST]: l.digest, [ANNOTATION_LAYER_DIFF_ID]: l.diffId, [ANNOTATION_INDEX_VERSION]: version },
      },
      // Listed so the artifact keeps the pack alive in the registry; readers find it by digest.
      ...(l.windowPack ? [{ mediaType: CLIP_WINDOW_PACK_MEDIA_TYPE, data: l.windowPack }] : []),
    ]),
    // No timestamp: the same indexes give the same manifest digest, so a re-push changes nothing.
    annotations: { [ANNOTATION_INDEX_VERSION]: version },
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  // This process's own lookups must see the push at once, not after the negative-cache window.
  artifactFinderFor(client).forget(repo, subject.digest);
  return pushed;
}
