import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { dataCorrupt, invalidArgument } from '../errors/index.js';

const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

/** Validate a digest string (`sha256:<64 hex>` or `sha512:<128 hex>`) and return its parts. */
export function parseDigest(digest: string): { algorithm: 'sha256' | 'sha512'; hex: string } {
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const len = ALGORITHMS[algorithm];
  if (colon < 0 || len === undefined || hex.length !== len || !/^[0-9a-f]+$/.test(hex)) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_DIGEST', `digest "${digest.slice(0, 200)}"`);
  }
  return { algorithm: algorithm as 'sha256' | 'sha512', hex };
}

/** The `sha256:` digest of some bytes. */
export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Hash `data` with the algorithm of `expected`; throw data_corrupt naming `what` on a mismatch. */
export function verifyDigest(data: Uint8Array, expected: string, what: string): void {
  const { algorithm } = parseDigest(expected);
  const actual = `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
  if (actual !== expected) throw mismatch(what, expected, actual);
}

function mismatch(what: string, expected: string, actual: string) {
  return dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${what}: content hashes to ${actual}, expected ${expected}`);
}

/**
 * A pass-through stream that hashes what flows through it and fails at the end, before `end` is
 * emitted, when the digest (or the expected size) does not match.
 */
export class DigestVerifier extends Transform {
  #hash: Hash;
  #expected: string;
  #expectedSize: number | undefined;
  #what: string;
  #bytes = 0;

  constructor(expected: string, what: string, expectedSize?: number) {
    super();
    this.#hash = createHash(parseDigest(expected).algorithm);
    this.#expected = expected;
    this.#expectedSize = expectedSize;
    this.#what = what;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#expectedSize !== undefined && this.#bytes > this.#expectedSize) {
      done(dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${this.#what}: more than the expected ${this.#expectedSize} bytes`));
      return;
    }
    this.#hash.update(chunk);
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const actual = `${parseDigest(this.#expected).algorithm}:${this.#hash.digest('hex')}`;
    if (this.#expectedSize !== undefined && this.#bytes !== this.#expectedSize) {
      done(dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${this.#what}: got ${this.#bytes} bytes, expected ${this.#expectedSize}`));
    } else if (actual !== this.#expected) {
      done(mismatch(this.#what, this.#expected, actual));
    } else {
      done();
    }
  }
}
