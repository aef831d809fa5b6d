export { ClipRemoteLayers, namespaceOfKey } from './clip-remote-layers.js';
export type { ChainLayer, ChainResolver, ClipRemoteLayersOptions } from './clip-remote-layers.js';
export { IndexResolver, indexCacheKey } from './index-resolver.js';
export type { ArtifactLookup, IndexRequest, IndexResolverOptions, IndexSource, ResolvedIndex } from './index-resolver.js';
export {
  LABEL_CLIP_DIFF_ID,
  LABEL_CLIP_IMAGE_REF,
  LABEL_CLIP_LAYER_DIGEST,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
  LABEL_STARGZ_DIGEST,
  LABEL_STARGZ_REFERENCE,
  checkDigest,
  layerHintFromLabels,
} from './layer-labels.js';
export type { HintSource, LayerHint } from './layer-labels.js';
