/**
 * The on-disk tier's bookkeeping: which complete layers are in `<cacheDir>` (one file per diffID
 * hex, `<hex>.partial` while downloading), their sizes and last use, for LRU eviction.
 */
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';

const HEX = /^[0-9a-f]{64}$/;

interface CachedFile {
  size: number;
  lastUsedMs: number;
}

/** Files of the disk cache, with a running total for the size limit. */
export class DiskCache {
  readonly dir: string;
  readonly #log: Logger;
  readonly #files = new Map<string, CachedFile>();
  #totalBytes = 0;

  constructor(dir: string, log: Logger) {
    this.dir = dir;
    this.#log = log;
  }

  /** Create the directory, delete leftover `.partial` files (a crash mid-download), index the rest. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.partial')) {
        await unlink(path).catch(() => {});
        this.#log.info({ path }, 'deleted partial layer file left by an earlier run');
        continue;
      }
      if (!HEX.test(name)) continue;
      const st = await stat(path).catch(() => undefined);
      if (st?.isFile()) this.#put(name, st.size, st.atimeMs);
    }
  }

  get totalBytes(): number {
    return this.#totalBytes;
  }

  pathOf(hex: string): string {
    return join(this.dir, hex);
  }

  /** Size of the complete file for `hex`, if there is one. */
  sizeOf(hex: string): number | undefined {
    return this.#files.get(hex)?.size;
  }

  /** Record a file that was just completed. */
  add(hex: string, size: number): void {
    this.#put(hex, size, Date.now());
  }

  touch(hex: string): void {
    const f = this.#files.get(hex);
    if (f) f.lastUsedMs = Date.now();
  }

  /** Delete the file of `hex` and forget it. */
  async remove(hex: string): Promise<void> {
    const f = this.#files.get(hex);
    if (f) {
      this.#files.delete(hex);
      this.#totalBytes -= f.size;
    }
    await unlink(this.pathOf(hex)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Cached layers, least recently used first. */
  lru(): string[] {
    return [...this.#files.entries()].sort((a, b) => a[1].lastUsedMs - b[1].lastUsedMs).map(([hex]) => hex);
  }

  #put(hex: string, size: number, lastUsedMs: number): void {
    const old = this.#files.get(hex);
    if (old) this.#totalBytes -= old.size;
    this.#files.set(hex, { size, lastUsedMs });
    this.#totalBytes += size;
  }
}

/** The sha256 hex of a file, hashed on a worker thread (`hash-file.ts`). */
export { hashFile } from './hash-file.js';
