/**
 * What this node has found out and must not forget across restarts: layers whose bytes failed
 * their diffID (by layer state key) and indexes that did not describe their layer (by index
 * digest). Kept in one small JSON file under the root, replaced atomically on every change and
 * bounded: past `maxEntries` the oldest entries go (a forgotten layer is checked again, and
 * quarantined again, when next used).
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';

/** `layer`: keyed by `layerStateKey`; `index`: keyed by the sha256 hex of the index's bytes. */
export type QuarantineKind = 'layer' | 'index';

/** One quarantined layer or index. */
export interface QuarantineEntry {
  kind: QuarantineKind;
  key: string;
  /** The layer's blob digest and diffID, for the operator. */
  layer: string;
  diffId: string;
  /** Stable error code of the failed check (`CLIP_LAYER_DIFF_ID_MISMATCH`, `CLIP_INDEX_MISMATCH`). */
  code: string;
  reason: string;
  /** ISO time of the quarantine. */
  at: string;
}

const VERSION = 1;
/** A file larger than this is not ours (entries are a few hundred bytes each). */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

/** The persisted quarantine of one node; memory-only without a path. */
export class QuarantineList {
  readonly #path: string | undefined;
  readonly #max: number;
  readonly #log: Logger;
  /** Insertion order = age: the first entries are dropped first. */
  readonly #entries = new Map<string, QuarantineEntry>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string | undefined, maxEntries: number, log: Logger) {
    this.#path = path;
    this.#max = maxEntries;
    this.#log = log;
  }

  /** A list kept in memory only (tests, tools that open a store briefly). */
  static memory(opts: { maxEntries?: number; log?: Logger } = {}): QuarantineList {
    return new QuarantineList(undefined, Math.max(1, opts.maxEntries ?? 4096), opts.log ?? silentLogger());
  }

  /** Load the list at `path` (absent = empty; unreadable = empty, with an error log and the file kept aside). */
  static async open(path: string | undefined, opts: { maxEntries?: number; log?: Logger } = {}): Promise<QuarantineList> {
    const list = new QuarantineList(path, Math.max(1, opts.maxEntries ?? 4096), opts.log ?? silentLogger());
    if (path) await list.#load(path);
    return list;
  }

  /** The entry of a quarantined layer or index, or undefined. */
  get(kind: QuarantineKind, key: string): QuarantineEntry | undefined {
    return this.#entries.get(`${kind}:${key}`);
  }

  has(kind: QuarantineKind, key: string): boolean {
    return this.#entries.has(`${kind}:${key}`);
  }

  /** Every entry, oldest first (status, tests). */
  entries(): QuarantineEntry[] {
    return [...this.#entries.values()];
  }

  /** Record a quarantine and persist the list (in the background; `flush` waits for it). */
  add(entry: Omit<QuarantineEntry, 'at'> & { at?: string }): void {
    const id = `${entry.kind}:${entry.key}`;
    if (this.#entries.has(id)) return;
    this.#entries.set(id, { ...entry, reason: entry.reason.slice(0, 1024), at: entry.at ?? new Date().toISOString() });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
      this.#log.warn({ entry: oldest, max_entries: this.#max }, 'quarantine list full: oldest entry dropped');
    }
    this.#save();
  }

  /** Resolves once every change so far is on disk. */
  flush(): Promise<void> {
    return this.#writing;
  }

  #save(): void {
    const path = this.#path;
    if (!path) return;
    const body = JSON.stringify({ version: VERSION, entries: this.entries() }, null, 1);
    this.#writing = this.#writing.then(async () => {
      const tmp = `${path}.${process.pid}.tmp`;
      try {
        await mkdir(dirname(path), { recursive: true });
        const fh = await open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(body);
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(tmp, path);
      } catch (err) {
        await rm(tmp, { force: true }).catch(() => undefined);
        this.#log.error({ path, err: messageOf(err) }, 'quarantine list not saved: a restart would forget the latest quarantine');
      }
    });
  }

  async #load(path: string): Promise<void> {
    let text: string;
    try {
      const fh = await open(path, 'r');
      try {
        const { size } = await fh.stat();
        if (size > MAX_FILE_BYTES) throw new Error(`${size} bytes, more than ${MAX_FILE_BYTES}`);
        text = await readFile(fh, 'utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      return this.#discard(path, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      return this.#discard(path, err);
    }
    const entries = (parsed as { version?: unknown; entries?: unknown }).entries;
    if ((parsed as { version?: unknown }).version !== VERSION || !Array.isArray(entries)) return this.#discard(path, new Error('not a version 1 quarantine list'));
    for (const e of entries.slice(-this.#max)) {
      if (isEntry(e)) this.#entries.set(`${e.kind}:${e.key}`, e);
      else this.#log.warn({ path }, 'malformed quarantine entry skipped');
    }
    if (this.#entries.size > 0) this.#log.info({ path, entries: this.#entries.size }, 'quarantine list loaded');
  }

  async #discard(path: string, err: unknown): Promise<void> {
    const aside = `${path}.corrupt`;
    await rename(path, aside).catch(() => undefined);
    this.#log.error({ path, moved_to: aside, err: messageOf(err) }, 'quarantine list unreadable: starting empty');
  }
}

function isEntry(e: unknown): e is QuarantineEntry {
  if (typeof e !== 'object' || e === null) return false;
  const o = e as Record<string, unknown>;
  return (o.kind === 'layer' || o.kind === 'index') && typeof o.key === 'string' && HEX64.test(o.key)
    && typeof o.layer === 'string' && typeof o.diffId === 'string' && typeof o.code === 'string'
    && typeof o.reason === 'string' && typeof o.at === 'string';
}
