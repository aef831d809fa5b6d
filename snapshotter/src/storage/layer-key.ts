/**
 * What names a layer's state on this node. The disk cache is content-addressed by diffID (a file
 * is only kept after its bytes hashed to it), but everything served *before* that check — spans
 * verified against an index's span digests, a download's prefix, the sparse file and its record —
 * is only as good as the blob and the index it came from. Two images that merely claim the same
 * diffID must never share it, so that state is keyed by the diffID together with the blob digest
 * and the random-access table the spans were verified against.
 */
import { createHash } from 'node:crypto';
import type { LayerRef } from './layer-reader.js';

/** 64 hex: sha256 over the diffID, the blob digest and the digests of the index's span tables. */
export function layerStateKey(ref: LayerRef): string {
  const h = createHash('sha256');
  h.update(`clip-layer-state/v1\n${ref.diffId}\n${ref.digest}\n`);
  h.update(tableDigest(ref.gzipCheckpoints));
  h.update('\n');
  h.update(tableDigest(ref.zstdFrames));
  return h.digest('hex');
}

function tableDigest(table: Buffer | undefined): string {
  return table === undefined ? '-' : createHash('sha256').update(table).digest('hex');
}
