export { ContainerdClient } from './containerd-client.js';
export type { ContainerdClientOptions } from './containerd-client.js';
export { CONTAINERD_ERROR_CODES, fromGrpcError, kindOfGrpcCode } from './grpc-errors.js';
export { chainId, chainIds, childChainId } from './chain-id.js';
export {
  LABEL_CRI_IMAGE_LAYERS,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
  LABEL_DISTRIBUTION_SOURCE_PREFIX,
  LABEL_GC_EXPIRE,
  LABEL_GC_REF_CONFIG,
  LABEL_SNAPSHOT_REF,
  LABEL_UNCOMPRESSED,
  MAX_LABEL_BYTES,
  criLayerLabels,
  distributionSourceLabel,
  extractKey,
  gcRefLayerLabel,
  gcRefManifestLabel,
  gcRefSnapshotLabel,
  imageLayersLabelValue,
  indexGcLabels,
  labelFits,
  manifestGcLabels,
} from './labels.js';
export type { CriLayerLabelInput } from './labels.js';
export { ContentStoreLayerResolver, distributionSource } from './content-resolver.js';
export { hostFromImages, splitImageName } from './image-store-host.js';
export type { ContentStoreLayerResolverOptions, ResolvedLayer } from './content-resolver.js';
export { RegistryImageSource } from './image-source.js';
export type { FetchedManifestBytes, ImageSource } from './image-source.js';
export { pullImage } from './puller.js';
export type { LayerPullMode, LayerPullResult, PullClient, PullOptions, PullSummary } from './puller.js';
export type { ContentSource, WriteContentOptions, WriteContentResult } from './content-writer.js';
export type { ContainerdDescriptor, ContainerdMount, ContentInfo, ImageRecord, SnapshotKind, SnapshotRecord } from './types.js';
