/**
 * Key layout in Redis. No hash tags: every chunk key hashes to its own cluster slot, so one
 * layer's chunks (and the load of reading them) spread across all masters.
 *
 *   <prefix><key>:manifest            JSON manifest, written last (object complete)
 *   <prefix><key>:<chunkSize>:<i>     chunk i, [encoding u8][payload]
 *   <prefix><key>:lock                publish lock (SET NX PX)
 *   <prefix>blob:<key>                small blobs (clip indexes)
 */

/** The default prefix of every key clip writes. */
export const DEFAULT_KEY_PREFIX = 'clip:cc:';

// Braces would turn part of a key into a hash tag and pin a layer's chunks to one slot.
const safe = (key: string): string => key.replace(/[{}]/g, (c) => (c === '{' ? '%7B' : '%7D'));

/** Key builders for one prefix. */
export class RedisKeys {
  readonly #prefix: string;

  constructor(prefix = DEFAULT_KEY_PREFIX) {
    this.#prefix = safe(prefix);
  }

  manifest(key: string): string {
    return `${this.#prefix}${safe(key)}:manifest`;
  }

  /** Chunk keys include the chunk size, so nodes configured differently never mix chunks. */
  chunk(key: string, chunkSizeBytes: number, index: number): string {
    return `${this.#prefix}${safe(key)}:${chunkSizeBytes}:${index}`;
  }

  lock(key: string): string {
    return `${this.#prefix}${safe(key)}:lock`;
  }

  blob(key: string): string {
    return `${this.#prefix}blob:${safe(key)}`;
  }
}
