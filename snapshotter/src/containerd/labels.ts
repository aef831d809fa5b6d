/** Label names containerd, CRI and GC agree on, and builders for the labels a pull sets. */

/** containerd validates `len(key) + len(value)` of every label against this. */
export const MAX_LABEL_BYTES = 4096;

export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';
export const LABEL_CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';
export const LABEL_GC_REF_CONFIG = 'containerd.io/gc.ref.content.config';
export const LABEL_UNCOMPRESSED = 'containerd.io/uncompressed';
export const LABEL_DISTRIBUTION_SOURCE_PREFIX = 'containerd.io/distribution.source.';

/** `containerd.io/gc.ref.content.l.<i>` (manifest → layer i). */
export const gcRefLayerLabel = (i: number): string => `containerd.io/gc.ref.content.l.${i}`;
/** `containerd.io/gc.ref.content.m.<i>` (index → manifest i). */
export const gcRefManifestLabel = (i: number): string => `containerd.io/gc.ref.content.m.${i}`;
/** `containerd.io/gc.ref.snapshot.<snapshotter>` (config → top snapshot). */
export const gcRefSnapshotLabel = (snapshotter: string): string => `containerd.io/gc.ref.snapshot.${snapshotter}`;
/** `containerd.io/distribution.source.<host>` → repository, as containerd's fetcher sets it. */
export const distributionSourceLabel = (host: string): string => `${LABEL_DISTRIBUTION_SOURCE_PREFIX}${host}`;

/** True when a label fits containerd's limit. */
export function labelFits(key: string, value: string): boolean {
  return Buffer.byteLength(key) + Buffer.byteLength(value) <= MAX_LABEL_BYTES;
}

/**
 * The comma list of layer digests for `cri.image-layers`: as many leading digests as fit the
 * label limit, the way CRI builds it (later digests are dropped, never cut in half).
 */
export function imageLayersLabelValue(digests: readonly string[], key = LABEL_CRI_IMAGE_LAYERS): string {
  let value = '';
  for (const d of digests) {
    const next = value === '' ? d : `${value},${d}`;
    if (!labelFits(key, next)) break;
    value = next;
  }
  return value;
}

export interface CriLayerLabelInput {
  /** The image reference as the user wrote it, normalised (e.g. `docker.io/library/alpine:latest`). */
  imageRef: string;
  manifestDigest: string;
  /** Digests of all layers of the manifest, in order. */
  layerDigests: readonly string[];
  /** This layer's index in `layerDigests`. */
  index: number;
  chainId: string;
}

/** The labels CRI's unpacker sends with Prepare for layer `index`. */
export function criLayerLabels(input: CriLayerLabelInput): Record<string, string> {
  const digest = input.layerDigests[input.index];
  if (digest === undefined) throw new RangeError(`layer index ${input.index} out of ${input.layerDigests.length}`);
  return {
    [LABEL_SNAPSHOT_REF]: input.chainId,
    [LABEL_CRI_IMAGE_REF]: input.imageRef,
    [LABEL_CRI_LAYER_DIGEST]: digest,
    [LABEL_CRI_MANIFEST_DIGEST]: input.manifestDigest,
    [LABEL_CRI_IMAGE_LAYERS]: imageLayersLabelValue(input.layerDigests.slice(input.index)),
  };
}

/** gc refs from a manifest to its config and layers. */
export function manifestGcLabels(configDigest: string, layerDigests: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = { [LABEL_GC_REF_CONFIG]: configDigest };
  layerDigests.forEach((d, i) => {
    labels[gcRefLayerLabel(i)] = d;
  });
  return labels;
}

/** gc refs from an index to its manifests. */
export function indexGcLabels(manifestDigests: readonly string[]): Record<string, string> {
  return Object.fromEntries(manifestDigests.map((d, i) => [gcRefManifestLabel(i), d]));
}

/** The key in the snapshotter's namespace under which a layer is extracted (`extract-<nanos>-<rand> <chainID>`). */
export function extractKey(chainId: string, nowNs: bigint, rand: string): string {
  return `extract-${nowNs}-${rand} ${chainId}`;
}
