/**
 * Checking a disk-cache file before this process serves it: the size always, the sha256 against
 * the diffID unless turned off, once per file per process (a file this process wrote or already
 * hashed is trusted). A file that fails is deleted, so the read falls through to the next tier.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../log/index.js';
import { hashFile, type DiskCache } from './disk-cache.js';
import type { LayerRef } from './layer-reader.js';

/** Which cached files this process has verified, and the check itself. */
export class CachedLayerCheck {
  readonly #disk: DiskCache;
  readonly #hash: boolean;
  readonly #log: Logger;
  readonly #verified = new Set<string>();

  /** `hash` = false checks sizes only (`verifyCachedLayers: false`). */
  constructor(disk: DiskCache, hash: boolean, log: Logger) {
    this.#disk = disk;
    this.#hash = hash;
    this.#log = log;
  }

  /** A file this process wrote (or adopted after hashing it) needs no check. */
  trust(hex: string): void {
    this.#verified.add(hex);
  }

  /** The file is going away (evicted): a new one under the same name is checked again. */
  forget(hex: string): void {
    this.#verified.delete(hex);
  }

  /** Open the cached file of `ref` for reading after checking it; undefined (file deleted) when it fails. */
  async open(hex: string, ref: LayerRef): Promise<FileHandle | undefined> {
    const path = this.#disk.pathOf(hex);
    const started = Date.now();
    const size = (await stat(path).catch(() => undefined))?.size;
    let why: string | undefined;
    if (size !== ref.uncompressedSize) why = `size ${String(size)}, expected ${ref.uncompressedSize}`;
    else if (this.#hash && !this.#verified.has(hex)) {
      const actual = `sha256:${await hashFile(path)}`;
      if (actual !== ref.diffId) why = `sha256 ${actual}`;
    }
    if (why !== undefined) {
      this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, reason: why }, 'disk cache file corrupt; deleting and refetching');
      this.#verified.delete(hex);
      await this.#disk.remove(hex).catch(() => {});
      return undefined;
    }
    this.#verified.add(hex);
    this.#log.debug({ diff_id: ref.diffId, bytes: size, duration_ms: Date.now() - started }, 'disk cache file verified');
    return open(path, 'r');
  }
}
