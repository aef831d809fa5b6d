/**
 * The range-read tier (off unless `LayerStoreOptions.rangeReads`): a miss on a gzip layer whose
 * index carries checkpoints inflates only the spans it touches, fetched with HTTP Range requests,
 * into a sparse per-layer file. Any failure (no addon, a corrupt table or window, a registry that
 * ignores Range, a lying registry) disables the tier for that layer and the read falls back to
 * the whole-layer download, which stays the path to a complete, diffID-verified cache entry.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { dataCorrupt, messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { SparseGzipLayer, decodeCheckpointTable, loadZran } from '../zran/index.js';
import type { BlobSource } from './blob-source.js';
import { hashFile } from './disk-cache.js';
import type { LayerRef } from './layer-reader.js';

interface RangeLayer {
  layer?: Promise<SparseGzipLayer>;
  disabled?: boolean;
  completing?: Promise<void>;
}

/** What the tier does with a layer whose every span is present and whose file hashes to its diffID. */
export type AdoptLayer = (ref: LayerRef, path: string) => Promise<void>;

export interface RangeTierOptions {
  dir: string;
  blobs: BlobSource;
  log: Logger;
  /** Background completion rate after the first range read; 0 = none. */
  completionBytesPerSec: number;
  adopt: AdoptLayer;
}

/** Sparse gzip layers, one per diffID, under `<dir>/<hex>`. */
export class RangeTier {
  readonly #dir: string;
  readonly #blobs: BlobSource;
  readonly #log: Logger;
  readonly #o: RangeTierOptions;
  readonly #layers = new Map<string, RangeLayer>();
  readonly #stop = new AbortController();
  #made: Promise<unknown> | undefined;

  constructor(o: RangeTierOptions) {
    this.#o = o;
    this.#dir = o.dir;
    this.#blobs = o.blobs;
    this.#log = o.log;
  }

  /** Whether a read of this layer may try the tier. */
  usable(hex: string, ref: LayerRef): boolean {
    return ref.gzipCheckpoints !== undefined && this.#blobs.fetchRange !== undefined && this.#layers.get(hex)?.disabled !== true && loadZran() !== undefined;
  }

  /** Serve a read from spans, or undefined (after logging why) when the whole-layer path must. */
  async read(hex: string, ref: LayerRef, buf: Buffer, bufOffset: number, len: number, offset: number, signal: AbortSignal): Promise<number | undefined> {
    let st = this.#layers.get(hex);
    if (!st) this.#layers.set(hex, (st = {}));
    if (st.disabled) return undefined;
    try {
      st.layer ??= this.#open(hex, ref);
      const n = await (await st.layer).read(buf, bufOffset, len, offset, signal);
      if (this.#o.completionBytesPerSec > 0) st.completing ??= this.#complete(hex, ref, st);
      return n;
    } catch (err) {
      if (!st.disabled) {
        st.disabled = true;
        this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err), code: (err as { code?: string }).code }, 'range reads disabled for layer; fetching it whole');
        void st.layer?.then((l) => l.remove()).catch(() => {});
      }
      return undefined;
    }
  }

  /** Compressed bytes fetched through ranges for a layer (tests, metrics). */
  async fetchedBytes(hex: string): Promise<number> {
    const l = this.#layers.get(hex)?.layer;
    return l ? (await l.catch(() => undefined))?.fetchedBytes ?? 0 : 0;
  }

  /** The full layer is cached now: the sparse copy is no longer needed. */
  async completed(hex: string): Promise<void> {
    const st = this.#layers.get(hex);
    this.#layers.delete(hex);
    await st?.layer?.then((l) => l.remove()).catch(() => {});
  }

  /** Close a layer's sparse file (nothing reads it any more); its spans stay for a later mount. */
  async release(hex: string): Promise<void> {
    const st = this.#layers.get(hex);
    if (!st || st.disabled) return;
    this.#layers.delete(hex);
    await st.layer?.then((l) => l.close()).catch(() => {});
  }

  /** Wait for background completions (tests, shutdown after `close`). */
  async drain(): Promise<void> {
    await Promise.all([...this.#layers.values()].map((st) => st.completing));
  }

  /** Abort background completions (their spans so far stay on disk for the next start). */
  stop(): void {
    this.#stop.abort();
  }

  async close(): Promise<void> {
    this.stop();
    await this.drain();
    await Promise.all([...this.#layers.keys()].map((hex) => this.release(hex)));
  }

  /**
   * Background completion: fetch the remaining spans at a bounded rate, check the whole file
   * against the diffID, and hand it to the disk cache (which publishes it to the ContentCache).
   */
  async #complete(hex: string, ref: LayerRef, st: RangeLayer): Promise<void> {
    const started = Date.now();
    try {
      const layer = await (st.layer as Promise<SparseGzipLayer>);
      await layer.fill(this.#o.completionBytesPerSec, this.#stop.signal);
      const path = join(this.#dir, hex);
      const actual = `sha256:${await hashFile(path)}`;
      if (actual !== ref.diffId) throw dataCorrupt('CLIP_LAYER_DIGEST_MISMATCH', `sparse layer ${hex} hashes to ${actual}`);
      await this.#o.adopt(ref, path);
      this.#log.info({ layer: ref.digest, diff_id: ref.diffId, bytes: layer.fetchedBytes, duration_ms: Date.now() - started }, 'layer completed from range reads');
      st.disabled = true;
      await layer.remove();
    } catch (err) {
      if (this.#stop.signal.aborted) return;
      this.#log.warn({ layer: ref.digest, diff_id: ref.diffId, err: messageOf(err) }, 'background completion of a range-read layer failed');
    }
  }

  async #open(hex: string, ref: LayerRef): Promise<SparseGzipLayer> {
    const table = decodeCheckpointTable(ref.gzipCheckpoints as Buffer);
    if (table.uncompressedSize !== ref.uncompressedSize) throw new Error(`checkpoint table is for ${table.uncompressedSize} bytes, layer has ${ref.uncompressedSize}`);
    this.#made ??= mkdir(this.#dir, { recursive: true });
    await this.#made;
    const fetchRange = this.#blobs.fetchRange?.bind(this.#blobs);
    if (!fetchRange) throw new Error('blob source cannot fetch ranges');
    return SparseGzipLayer.open({
      table, path: join(this.#dir, hex), log: this.#log,
      fetchRange: (start, end, signal) => fetchRange(ref, start, end, signal),
    });
  }
}
