export { ClipRemoteLayers, namespaceOfKey } from './clip-remote-layers.js';
export type { ChainLayer, ChainResolver, ClipRemoteLayersOptions, HandoverMount, ServedMount } from './clip-remote-layers.js';
export { LABEL_DIFF_ID, LABEL_PARENT_CHAIN_ID, checkChainId, parentChainIdOf } from './chain-id-check.js';
export type { ChainCheck } from './chain-id-check.js';
export { IndexResolver, indexCacheKey, indexDigestOf } from './index-resolver.js';
export { checkIndexAgainstLayer, indexDifference } from './index-check.js';
export type { CompleteLayerRead, IndexCheckResult } from './index-check.js';
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
export type { HintSource, LabelOrigin, LayerHint } from './layer-labels.js';
