/** Deterministic incompressible bytes for test layers: the same seed gives the same bytes (and so the same digests). */
import { createHash } from 'node:crypto';

/** `bytes` bytes of a SHA-256 chain started from `seed`. */
export function pseudoRandomBytes(seed: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < bytes; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}
