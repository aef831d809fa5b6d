/** Reader entry points: the daemon's "registry artifact" step of index resolution. */
import type { Descriptor, ImageReference, Platform, RepositoryRef } from '../registry/index.js';
import { formatReference, toRepositoryRef } from '../registry/index.js';
import { ClipArtifactFinder } from './artifact-finder.js';
import type { ArtifactRegistry } from './types.js';

const finders = new WeakMap<ArtifactRegistry, ClipArtifactFinder>();

/** The finder (and so the cache) shared by every lookup made through `client`. */
export function artifactFinderFor(client: ArtifactRegistry): ClipArtifactFinder {
  let f = finders.get(client);
  if (f === undefined) {
    f = new ClipArtifactFinder(client);
    finders.set(client, f);
  }
  return f;
}

/**
 * The encoded clip index of `layerDigest` from the artifact referring to manifest `manifestDigest`,
 * digest-verified but not decoded (the caller runs `decodeIndex`); undefined when none is published.
 */
export async function findLayerIndex(
  client: ArtifactRegistry, repo: string | RepositoryRef, manifestDigest: string, layerDigest: string, opts: { signal?: AbortSignal } = {},
): Promise<Buffer | undefined> {
  return artifactFinderFor(client).findLayerIndex(repo, manifestDigest, layerDigest, opts.signal);
}

/** Every layer of an image with the index blob published for it (if any). */
export interface ImageIndexListing {
  /** `domain/repository` */
  repo: string;
  subject: Descriptor;
  artifacts: Descriptor[];
  layers: Array<{ digest: string; diffId: string | undefined; index: Descriptor | undefined }>;
}

/** Resolve an image (one platform) and list the published index of each of its layers. */
export async function findImageIndexes(
  client: ArtifactRegistry, imageRef: string | ImageReference, opts: { platform?: string | Platform; signal?: AbortSignal } = {},
): Promise<ImageIndexListing> {
  const image = await client.resolveImage(imageRef, opts);
  const repo = toRepositoryRef(image.reference);
  const finder = artifactFinderFor(client);
  const artifacts = await finder.artifacts(repo, image.descriptor.digest, opts.signal);
  const layers = [];
  for (const l of image.manifest.layers) {
    const found = await finder.layerIndexDescriptor(repo, image.descriptor.digest, l.digest, opts.signal);
    layers.push({ digest: l.digest, diffId: found?.diffId, index: found?.blob });
  }
  return { repo: repoName(image.reference), subject: image.descriptor, artifacts: artifacts.map((a) => a.descriptor), layers };
}

/** `domain/repository` of a reference. */
export function repoName(ref: ImageReference | RepositoryRef): string {
  return formatReference({ domain: ref.domain, repository: ref.repository });
}
