/** Build-and-publish for whole images, one artifact per platform manifest. */
import { isManifestMediaType, parseReference, type Descriptor, type ImageReference, type Platform } from '../registry/index.js';
import { ClipArtifactFinder } from './artifact-finder.js';
import { buildImageIndexes, type BuildImageIndexesOptions } from './build-image-indexes.js';
import { pushIndexArtifact } from './push-index-artifact.js';
import type { ArtifactRegistry, ImageIndexes } from './types.js';

/** One image manifest indexed and published. */
export interface IndexedImage extends ImageIndexes {
  /** The artifact now holding every layer's index. */
  artifact: Descriptor;
  /** False when an existing artifact already held them all and nothing was pushed. */
  pushed: boolean;
}

/** Index one platform manifest of `imageRef` and push the artifact unless one already covers it. */
export async function indexImage(client: ArtifactRegistry, imageRef: string | ImageReference, opts: BuildImageIndexesOptions = {}): Promise<IndexedImage> {
  const finder = opts.finder ?? new ClipArtifactFinder(client, { maxSubjects: 4, ...(opts.logger ? { logger: opts.logger } : {}) });
  const built = await buildImageIndexes(client, imageRef, { ...opts, finder });
  if (built.complete !== undefined) return { ...built, artifact: built.complete, pushed: false };
  const artifact = await pushIndexArtifact(client, built.repo, built.subject, built.layers, opts.signal ? { signal: opts.signal } : {});
  finder.forget(built.repo, built.subject.digest);
  return { ...built, artifact, pushed: true };
}

/** A platform manifest of an image, addressed by digest. */
export interface PlatformManifest {
  reference: ImageReference;
  descriptor: Descriptor;
  platform: Platform | undefined;
}

/**
 * Every runnable platform manifest of `imageRef`: the manifest itself for single-platform images,
 * else the index's entries minus attestation manifests (platform `unknown/unknown`).
 */
export async function listPlatformManifests(client: ArtifactRegistry, imageRef: string | ImageReference, signal?: AbortSignal): Promise<PlatformManifest[]> {
  const ref = typeof imageRef === 'string' ? parseReference(imageRef) : imageRef;
  const root = await client.getManifest(ref, signal);
  const byDigest = (d: Descriptor): ImageReference => ({ domain: ref.domain, repository: ref.repository, digest: d.digest });
  if (root.type === 'manifest') return [{ reference: byDigest(root.descriptor), descriptor: root.descriptor, platform: undefined }];
  return root.index.manifests
    .filter((d) => isManifestMediaType(d.mediaType) && d.platform?.os !== 'unknown')
    .map((d) => ({ reference: byDigest(d), descriptor: d, platform: d.platform }));
}
