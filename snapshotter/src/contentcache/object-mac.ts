/**
 * Authenticating ContentCache objects with a cluster key that never enters Redis: every manifest
 * and blob carries an HMAC-SHA256 over its own key name and contents, so a writer of Redis can
 * neither forge an object nor move a valid one onto another key (another layer, another span).
 * Chunks need no tag of their own: the signed manifest records each chunk's SHA-256.
 *
 * Rotation without downtime: the key file holds one key per line; the first signs, every line is
 * accepted. Add the new key as a second line on every node, then move it first, then drop the old.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { ClipError, invalidArgument } from '../errors/index.js';

/** Bytes of a tag. */
export const MAC_BYTES = 32;
const MIN_KEY_BYTES = 32;

/** Signs with the first key, accepts any. */
export class ObjectMac {
  readonly #keys: readonly Buffer[];

  constructor(keys: readonly Buffer[]) {
    if (keys.length === 0) throw invalidArgument('CLIP_CONTENT_CACHE_KEY_INVALID', 'ContentCache key file holds no key');
    for (const k of keys) {
      if (k.length < MIN_KEY_BYTES) throw invalidArgument('CLIP_CONTENT_CACHE_KEY_INVALID', `ContentCache keys must be at least ${MIN_KEY_BYTES} bytes`);
    }
    this.#keys = keys;
  }

  /** The tag of `parts` under `context` (what kind of object, and its key name), with the signing key. */
  sign(context: string, ...parts: Buffer[]): Buffer {
    return tag(this.#keys[0] as Buffer, context, parts);
  }

  /** True when `mac` is the tag of `parts` under `context` for one of the accepted keys. */
  verify(mac: Buffer, context: string, ...parts: Buffer[]): boolean {
    if (mac.length !== MAC_BYTES) return false;
    return this.#keys.some((k) => timingSafeEqual(tag(k, context, parts), mac));
  }
}

// Lengths framed in, so no two (context, parts) lists give the same input.
function tag(key: Buffer, context: string, parts: readonly Buffer[]): Buffer {
  const h = createHmac('sha256', key);
  const ctx = Buffer.from(context);
  for (const p of [ctx, ...parts]) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(p.length));
    h.update(len).update(p);
  }
  return h.digest();
}

/** SHA-256 of a chunk, as a signed manifest records it. */
export function chunkDigest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The keys of `[content_cache] key_file`: one per line, hex (64+ digits) or base64; `#` comments
 * and blank lines ignored. The file must not be readable by group or others (it is a secret).
 */
export function loadMacKeys(path: string): ObjectMac {
  let text: string;
  try {
    const st = statSync(path);
    if ((st.mode & 0o077) !== 0) {
      throw invalidArgument('CLIP_CONTENT_CACHE_KEY_INVALID', `ContentCache key file ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof ClipError) throw err;
    throw invalidArgument('CLIP_CONTENT_CACHE_KEY_INVALID', `ContentCache key file ${path}: ${(err as Error).message}`);
  }
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (/^[0-9a-fA-F]+$/.test(l) && l.length % 2 === 0 ? Buffer.from(l, 'hex') : Buffer.from(l, 'base64')));
  return new ObjectMac(keys);
}
