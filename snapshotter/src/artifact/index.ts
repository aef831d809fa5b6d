export { ClipArtifactFinder } from './artifact-finder.js';
export type { ArtifactFinderOptions } from './artifact-finder.js';
export { buildImageIndexes } from './build-image-indexes.js';
export type { BuildImageIndexesOptions } from './build-image-indexes.js';
export { artifactFinderFor, findImageIndexes, findLayerIndex } from './find-indexes.js';
export type { ImageIndexListing } from './find-indexes.js';
export { createLayerIndexLookup } from './layer-index-lookup.js';
export type { LayerIndexLookupOptions, LayerIndexQuery } from './layer-index-lookup.js';
export { indexImage, listPlatformManifests } from './index-image.js';
export type { IndexedImage, PlatformManifest } from './index-image.js';
export {
  ANNOTATION_INDEX_VERSION,
  ANNOTATION_LAYER_DIFF_ID,
  ANNOTATION_LAYER_DIGEST,
  CLIP_INDEX_ARTIFACT_TYPE,
  CLIP_INDEX_MEDIA_TYPE,
  CLIP_WINDOW_PACK_MEDIA_TYPE,
  INDEX_FORMAT_VERSION,
  MAX_INDEX_BLOB_BYTES,
} from './media-types.js';
export { pushIndexArtifact } from './push-index-artifact.js';
export type { LayerIndexBlob } from './push-index-artifact.js';
export type { ArtifactRegistry, ImageIndexes, IndexArtifact, IndexProgress, LayerIndexDescriptor, LayerIndexResult } from './types.js';
