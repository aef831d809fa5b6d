/** OCI chain IDs: the name of the snapshot holding layers 0..n applied in order. */
import { createHash } from 'node:crypto';
import { invalidArgument } from '../errors/index.js';

/** The chain ID of a layer with `diffId` on top of `parentChainId` ('' for the first layer). */
export function childChainId(parentChainId: string, diffId: string): string {
  return parentChainId === '' ? diffId : `sha256:${createHash('sha256').update(`${parentChainId} ${diffId}`).digest('hex')}`;
}

/** chainID(0) = diffID(0); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let prev: string | undefined;
  for (const diffId of diffIds) {
    if (!/^sha256:[0-9a-f]{64}$/.test(diffId)) throw invalidArgument('CLIP_INVALID_DIFF_ID', `diff id "${diffId.slice(0, 100)}"`);
    prev = childChainId(prev ?? '', diffId);
    out.push(prev);
  }
  return out;
}

/** The chain ID of the whole stack (the top snapshot's name); undefined for no layers. */
export function chainId(diffIds: readonly string[]): string | undefined {
  return chainIds(diffIds).at(-1);
}
