/**
 * Reading a Prepare's labels: which image and layer a lazily served snapshot stands for. Three
 * clients, three dialects — CRI (`cri.*`), stargz's ctr-remote (`remote/stargz.*`), and clients
 * that send only `containerd.io/snapshot.ref` (nerdctl, containerd's Go client), whose layer must be
 * found through containerd's content store.
 */
import { invalidArgument } from '../errors/index.js';

export const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
/** The Prepare's layer and the image's layers above it, comma-separated (CRI; cut to fit a label). */
export const LABEL_CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';
export const LABEL_STARGZ_REFERENCE = 'containerd.io/snapshot/remote/stargz.reference';
export const LABEL_STARGZ_DIGEST = 'containerd.io/snapshot/remote/stargz.digest';
/** Written by clip at commit so a restart can re-mount without asking anyone. */
export const LABEL_CLIP_IMAGE_REF = 'containerd.io/snapshot/clip.image-ref';
export const LABEL_CLIP_LAYER_DIGEST = 'containerd.io/snapshot/clip.layer-digest';
export const LABEL_CLIP_DIFF_ID = 'containerd.io/snapshot/clip.diff-id';

/** Where a layer hint came from. */
export type HintSource = 'clip' | 'cri' | 'stargz' | 'content_store';

/** The image and layer a Prepare refers to. */
export type LayerHint =
  | { type: 'known'; source: Exclude<HintSource, 'content_store'>; chainId: string; imageRef: string; layerDigest: string; manifestDigest?: string }
  | { type: 'chain_only'; chainId: string };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Check a digest label's value; malformed values are an invalid argument naming the label. */
export function checkDigest(value: string, label: string): string {
  if (!DIGEST_RE.test(value)) {
    throw invalidArgument('CLIP_LABEL_BAD_DIGEST', `label ${label}=${JSON.stringify(value.slice(0, 80))} is not a sha256 digest`);
  }
  return value;
}

function checkRef(value: string, label: string): string {
  if (value.length === 0 || value.length > 4096 || /\s/.test(value)) {
    throw invalidArgument('CLIP_LABEL_BAD_REF', `label ${label}=${JSON.stringify(value.slice(0, 80))} is not an image reference`);
  }
  return value;
}

/** Label dialects in the order they are consulted. */
const CONTAINERD_DIALECTS: ReadonlyArray<[Exclude<HintSource, 'content_store'>, string, string]> = [
  ['cri', LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST],
  ['stargz', LABEL_STARGZ_REFERENCE, LABEL_STARGZ_DIGEST],
];
const WITH_CLIP: typeof CONTAINERD_DIALECTS = [['clip', LABEL_CLIP_IMAGE_REF, LABEL_CLIP_LAYER_DIGEST], ...CONTAINERD_DIALECTS];

/** Whose labels these are: a Prepare's (containerd's and, through annotations, the image's) or our own record. */
export type LabelOrigin = 'prepare' | 'committed';

/**
 * The layer hint in a Prepare's labels, or undefined when the Prepare is not for an image layer
 * (no `containerd.io/snapshot.ref`). Throws an invalid-argument ClipError on malformed labels.
 *
 * `clip.*` labels are this daemon's own record, written at commit for a restart. containerd copies
 * every manifest layer annotation beginning `containerd.io/snapshot/` into a Prepare's labels, so
 * on a Prepare (`origin` 'prepare') they can only come from the image and are ignored — they would
 * otherwise name any layer of any repository for the node to fetch with its credentials.
 */
export function layerHintFromLabels(labels: Readonly<Record<string, string>>, origin: LabelOrigin = 'prepare'): LayerHint | undefined {
  const chainId = labels[LABEL_SNAPSHOT_REF];
  if (!chainId) return undefined;
  const dialects = origin === 'committed' ? WITH_CLIP : CONTAINERD_DIALECTS;
  for (const [source, refLabel, digestLabel] of dialects) {
    const ref = labels[refLabel];
    const digest = labels[digestLabel];
    if (ref === undefined && digest === undefined) continue;
    if (ref === undefined || digest === undefined) {
      throw invalidArgument('CLIP_LABEL_INCOMPLETE', `label ${ref === undefined ? refLabel : digestLabel} missing beside ${ref === undefined ? digestLabel : refLabel}`);
    }
    const manifest = labels[LABEL_CRI_MANIFEST_DIGEST];
    return {
      type: 'known',
      source,
      chainId,
      imageRef: checkRef(ref, refLabel),
      layerDigest: checkDigest(digest, digestLabel),
      ...(manifest && DIGEST_RE.test(manifest) ? { manifestDigest: manifest } : {}),
    };
  }
  return { type: 'chain_only', chainId };
}

/** At most this many digests are read from `cri.image-layers` (a 4 KiB label holds about 56). */
export const MAX_IMAGE_LAYERS = 128;

/**
 * The layer digests a Prepare's `cri.image-layers` label lists (well-formed sha256 digests only,
 * each once, at most MAX_IMAGE_LAYERS); empty without the label. The label is a hint for looking
 * indexes up ahead, never what a mount serves: a malformed entry is skipped, not an error.
 */
export function imageLayersFromLabels(labels: Readonly<Record<string, string>>): string[] {
  const value = labels[LABEL_CRI_IMAGE_LAYERS];
  if (!value) return [];
  const out = new Set<string>();
  for (const d of value.split(',')) {
    if (out.size >= MAX_IMAGE_LAYERS) break;
    const t = d.trim();
    if (DIGEST_RE.test(t)) out.add(t);
  }
  return [...out];
}
