/**
 * The chain-ID check a remote commit must pass. containerd names a layer's snapshot by its chain
 * ID — sha256(parent chain ID + " " + diffID), the first layer's being its diffID — computed from
 * the image config, and a later image whose config names the same diffIDs finds that snapshot and
 * skips its own download. containerd's applier earns that trust by checking the applied layer
 * against the diffID; a lazy layer is never applied, so before one is committed under a chain ID
 * the diffID of what will be served (the index's, bound to the layer digest) must chain from the
 * Prepare's parent to exactly that ID. An index that claims another diffID, or a layer whose
 * bytes differ from what the config names, then falls back to an ordinary snapshot, where
 * containerd's own check applies.
 */
import { childChainId } from '../containerd/chain-id.js';
import { failedPrecondition } from '../errors/index.js';

/** Set by containerd 2.3+ on Prepare of an unpack; also settable by image annotations, so only ever compared. */
export const LABEL_DIFF_ID = 'containerd.io/snapshot/diff-id';
export const LABEL_PARENT_CHAIN_ID = 'containerd.io/snapshot/parent-chain-id';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** containerd's metadata layer names committed snapshots `<namespace>/<seq>/<name>` in the backend. */
const NAMESPACED = /^[^/]+\/\d+\/(sha256:[0-9a-f]{64})$/;

/** The chain ID a Prepare's parent name stands for ('' for no parent), or undefined when it is none. */
export function parentChainIdOf(parentName: string): string | undefined {
  if (parentName === '') return '';
  if (DIGEST.test(parentName)) return parentName;
  return NAMESPACED.exec(parentName)?.[1];
}

export interface ChainCheck {
  /** `containerd.io/snapshot.ref`: the name the layer would be committed under. */
  chainId: string;
  /** The Prepare's parent, as containerd passed it. */
  parentName: string;
  /** The diffID of the bytes that will be served. */
  diffId: string;
  labels: Readonly<Record<string, string>>;
}

/** Throws failed_precondition `CLIP_CHAIN_ID_MISMATCH` unless the layer may be committed under `chainId`. */
export function checkChainId(c: ChainCheck): void {
  const parent = parentChainIdOf(c.parentName);
  const fail = (why: string): never => {
    throw failedPrecondition('CLIP_CHAIN_ID_MISMATCH', `chain ID ${c.chainId}: ${why}`);
  };
  if (parent === undefined) fail(`parent ${JSON.stringify(c.parentName.slice(0, 200))} is not a chain ID`);
  const labelDiffId = c.labels[LABEL_DIFF_ID];
  if (labelDiffId !== undefined && labelDiffId !== c.diffId) fail(`the layer's diffID is ${c.diffId}, label ${LABEL_DIFF_ID} says ${labelDiffId.slice(0, 80)}`);
  const labelParent = c.labels[LABEL_PARENT_CHAIN_ID];
  if (labelParent !== undefined && labelParent !== parent) fail(`the parent's chain ID is ${parent || 'none'}, label ${LABEL_PARENT_CHAIN_ID} says ${labelParent.slice(0, 80)}`);
  const expected = childChainId(parent as string, c.diffId);
  if (expected !== c.chainId) fail(`diffID ${c.diffId} on parent ${parent || '(none)'} gives ${expected}`);
}
