/**
 * Completed layers as ordinary directories: `<dir>/<key>/root` is the layer in overlayfs's
 * lower-dir form (the key is the caller's, over the diffID and the index it was extracted through),
 * `<dir>/<key>/record.json` says it is complete. A layer is extracted into
 * `<dir>/.tmp-<key>-<pid>-<n>`, flushed (syncfs), and renamed into place, so a crash mid-way leaves
 * only a temp dir, deleted at the next start; a `<key>` dir without a valid record is deleted too.
 * Counted in the disk cache's size limit. Only a dir `release`d in this process can be evicted:
 * one found at start may be a running container's lower dir until its layer is registered again
 * (and then released when its snapshot is removed); a pinned one never is.
 */
import { execFile } from 'node:child_process';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ClipError, internal, messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { extractLayer, type ExtractSource, type ReadLayer } from './layer-extract.js';

const run = promisify(execFile);
const HEX = /^[0-9a-f]{64}$/;
const SYNC_TIMEOUT_MS = 10 * 60_000;

interface Extracted {
  bytes: number;
  lastUsedMs: number;
}

interface ExtractRecord {
  /** The dir's name (a key over the diffID and the index it was extracted through; see clip-remote-layers.ts). */
  key?: string;
  diffId: string;
  bytes: number;
  entries: number;
}

/** What to extract: the layer's index and a reader of its verified uncompressed tar. */
export interface ExtractInput {
  /** Names the dir: 64 hex (the caller's key; the diffID's hex when `diffId` is absent). */
  hex: string;
  /** The layer's diffID, recorded; default `sha256:<hex>`. */
  diffId?: string;
  source: ExtractSource;
  read: ReadLayer;
  size: number;
}

/** The extracted-layer directories of one node. */
export class ExtractedLayers {
  readonly dir: string;
  readonly #log: Logger;
  readonly #done = new Map<string, Extracted>();
  readonly #running = new Map<string, Promise<string | undefined>>();
  readonly #pins = new Map<string, number>();
  /** Layers whose snapshot is gone in this process: their dirs may be evicted. */
  readonly #released = new Set<string>();
  #seq = 0;
  #totalBytes = 0;
  readonly #beforeBatch: (() => Promise<void>) | undefined;

  /** `beforeBatch`: extraction waits for it between files and 1 MiB copies (it yields to FUSE reads, `read-activity.ts`). */
  constructor(dir: string, log: Logger, beforeBatch?: () => Promise<void>) {
    this.dir = dir;
    this.#log = log;
    this.#beforeBatch = beforeBatch;
  }

  /** Create the directory, delete what a crash left half-made, index the complete ones. */
  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      const rec = HEX.test(name) ? await readRecord(path, name) : undefined;
      if (rec) {
        this.#put(name, rec.bytes);
        continue;
      }
      await rm(path, { recursive: true, force: true });
      this.#log.info({ path }, 'deleted an unfinished extracted layer left by an earlier run');
    }
  }

  /** Bytes of every complete extracted layer. */
  get totalBytes(): number {
    return this.#totalBytes;
  }

  /** Whether a layer is completely extracted (no LRU touch: for status). */
  has(hex: string): boolean {
    return this.#done.has(hex);
  }

  /** The overlay lower dir of a completely extracted layer, or undefined. */
  dirOf(hex: string): string | undefined {
    const e = this.#done.get(hex);
    if (!e) return undefined;
    e.lastUsedMs = Date.now();
    return join(this.dir, hex, 'root');
  }

  /** Extract a layer once (concurrent calls share the run); resolves to its dir, undefined on failure (logged). */
  extract(input: ExtractInput): Promise<string | undefined> {
    const have = this.dirOf(input.hex);
    if (have) return Promise.resolve(have);
    let p = this.#running.get(input.hex);
    if (!p) {
      p = this.#extract(input).finally(() => this.#running.delete(input.hex));
      this.#running.set(input.hex, p);
    }
    return p;
  }

  async #extract({ hex, diffId, source, read, size }: ExtractInput): Promise<string | undefined> {
    const started = Date.now();
    const tmp = join(this.dir, `.tmp-${hex}-${process.pid}-${++this.#seq}`);
    try {
      await mkdir(tmp, { mode: 0o700 });
      const result = await extractLayer(source, read, join(tmp, 'root'), size, this.#beforeBatch);
      const rec: ExtractRecord = { key: hex, diffId: diffId ?? `sha256:${hex}`, bytes: result.bytes, entries: result.entries };
      await writeFile(join(tmp, 'record.json'), JSON.stringify(rec), { mode: 0o600 });
      // One syncfs for the whole tree instead of an fsync per file; then the rename publishes it.
      await run('sync', ['-f', tmp], { timeout: SYNC_TIMEOUT_MS });
      await rename(tmp, join(this.dir, hex));
      await fsyncDir(this.dir);
      this.#put(hex, rec.bytes);
      this.#log.info({ diff_id: rec.diffId, bytes: rec.bytes, entries: rec.entries, duration_ms: Date.now() - started }, 'layer extracted to disk');
      return join(this.dir, hex, 'root');
    } catch (err) {
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
      const code = err instanceof ClipError ? err.code : 'CLIP_EXTRACT_FAILED';
      this.#log.warn({ diff_id: `sha256:${hex}`, code, err: messageOf(err) }, 'layer extraction failed; it stays served over FUSE');
      return undefined;
    }
  }

  /** Keep a layer's dir out of eviction until as many `unpin`s. */
  pin(hex: string): void {
    this.#pins.set(hex, (this.#pins.get(hex) ?? 0) + 1);
    this.#released.delete(hex);
  }

  /** The layer is no longer registered (its snapshot was removed): its dir may be evicted. */
  release(hex: string): void {
    this.#released.add(hex);
  }

  /** A layer registered again (mounted): not evictable until released again. */
  claim(hex: string): void {
    this.#released.delete(hex);
  }

  unpin(hex: string): void {
    const n = (this.#pins.get(hex) ?? 0) - 1;
    if (n > 0) this.#pins.set(hex, n);
    else this.#pins.delete(hex);
  }

  pinned(hex: string): boolean {
    return this.#pins.has(hex);
  }

  /** Extracted layers, least recently used first. */
  lru(): Array<{ hex: string; bytes: number }> {
    return [...this.#done.entries()].sort((a, b) => a[1].lastUsedMs - b[1].lastUsedMs).map(([hex, e]) => ({ hex, bytes: e.bytes }));
  }

  /** Delete an extracted layer that was released and is not pinned; false otherwise. */
  async evict(hex: string): Promise<boolean> {
    const e = this.#done.get(hex);
    if (!e || this.pinned(hex) || !this.#released.has(hex)) return false;
    this.#done.delete(hex);
    this.#released.delete(hex);
    this.#totalBytes -= e.bytes;
    // Out of the name first (atomic), so a crash mid-delete leaves a temp dir, never a half layer.
    const doomed = join(this.dir, `.tmp-${hex}-evict-${process.pid}-${++this.#seq}`);
    await rename(join(this.dir, hex), doomed);
    await rm(doomed, { recursive: true, force: true });
    return true;
  }

  #put(hex: string, bytes: number): void {
    const old = this.#done.get(hex);
    if (old) this.#totalBytes -= old.bytes;
    this.#done.set(hex, { bytes, lastUsedMs: Date.now() });
    this.#totalBytes += bytes;
  }
}

async function readRecord(path: string, hex: string): Promise<ExtractRecord | undefined> {
  try {
    const rec = JSON.parse(await readFile(join(path, 'record.json'), 'utf8')) as Partial<ExtractRecord>;
    if ((rec.key ?? rec.diffId?.slice('sha256:'.length)) !== hex || typeof rec.diffId !== 'string') return undefined;
    if (!Number.isSafeInteger(rec.bytes) || (rec.bytes as number) < 0) return undefined;
    return { key: hex, diffId: rec.diffId, bytes: rec.bytes as number, entries: Number(rec.entries) || 0 };
  } catch {
    return undefined;
  }
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } catch (err) {
    throw internal('CLIP_EXTRACT_FAILED', `fsync ${path}: ${messageOf(err)}`, err);
  } finally {
    await fh.close();
  }
}
