/** The image config's `rootfs.diff_ids`, which every layer index must agree with. */
import { invalidArgument } from '../errors/index.js';
import { formatReference, type ResolvedImage } from '../registry/index.js';
import type { ArtifactRegistry } from './types.js';

const IMAGE_CONFIG_MEDIA_TYPES = ['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json'];
const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

/** Fetch the config of an image manifest and return its diffIDs, one per layer. */
export async function readDiffIds(client: ArtifactRegistry, image: ResolvedImage, signal?: AbortSignal): Promise<string[]> {
  const what = `image ${formatReference(image.reference)} (${image.descriptor.digest})`;
  const config = image.manifest.config;
  if (!IMAGE_CONFIG_MEDIA_TYPES.includes(config.mediaType)) {
    throw invalidArgument('CLIP_ARTIFACT_NOT_AN_IMAGE', `${what}: config media type "${config.mediaType}" is not an image config`);
  }
  const bytes = await client.fetchBlobBytes(image.reference, config.digest, { maxBytes: MAX_CONFIG_BYTES, ...(signal ? { signal } : {}) });
  let diffIds: unknown;
  try {
    diffIds = (JSON.parse(bytes.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids;
  } catch (err) {
    throw invalidArgument('CLIP_ARTIFACT_NOT_AN_IMAGE', `${what}: config is not valid JSON`, err);
  }
  if (!Array.isArray(diffIds) || diffIds.length !== image.manifest.layers.length || !diffIds.every((d) => typeof d === 'string')) {
    throw invalidArgument('CLIP_ARTIFACT_NOT_AN_IMAGE', `${what}: config rootfs.diff_ids does not list one diffID per layer`);
  }
  return diffIds as string[];
}
