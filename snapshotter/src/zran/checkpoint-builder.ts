/**
 * Builds a gzip checkpoint table while the index builder streams a layer: every compressed chunk
 * goes through the addon's indexer, which reports a checkpoint at the first deflate block boundary
 * after each `spanBytes` of output; the output it returns is hashed span by span.
 */
import { createHash, type Hash } from 'node:crypto';
import { ClipError, dataCorrupt } from '../errors/index.js';
import type { GzipCheckpoint, GzipCheckpointTable } from './checkpoint-table.js';
import { loadZran, type NativePoint, type ZranNative } from './native.js';

export interface CheckpointBuilderOptions {
  /** Uncompressed bytes between checkpoints (at least; they sit on block boundaries). */
  spanBytes?: number;
  /** Compressed layers smaller than this get no table (fetched whole). */
  minLayerBytes?: number;
}

export const DEFAULT_SPAN_BYTES = 256 * 1024;
export const DEFAULT_MIN_LAYER_BYTES = 8 * 1024 * 1024;

/** Streaming builder; `push` every compressed byte in order, then `finish`. */
export class CheckpointBuilder {
  readonly #z: ZranNative;
  readonly #ix: unknown;
  readonly #spanBytes: number;
  readonly #minLayerBytes: number;
  readonly #points: Array<Omit<GzipCheckpoint, 'sha256'>> = [];
  readonly #hashes: Buffer[] = [];
  #hash: Hash | undefined;
  #out = 0;
  #in = 0;
  #ended = false;

  constructor(opts: CheckpointBuilderOptions = {}) {
    const z = loadZran();
    if (!z) throw new ClipError('unimplemented', 'CLIP_ZRAN_UNAVAILABLE', 'the clip_zran addon is not built (make zran)');
    this.#z = z;
    this.#spanBytes = opts.spanBytes ?? DEFAULT_SPAN_BYTES;
    this.#minLayerBytes = opts.minLayerBytes ?? DEFAULT_MIN_LAYER_BYTES;
    this.#ix = z.indexerCreate(this.#spanBytes);
  }

  /** Feed the next compressed chunk. Throws data_corrupt when the gzip stream is invalid. */
  push(chunk: Buffer): void {
    if (this.#ended) throw new Error('CheckpointBuilder: push after finish');
    this.#in += chunk.length;
    let r: { output: Buffer; points: NativePoint[] };
    try {
      r = this.#z.indexerPush(this.#ix, chunk);
    } catch (err) {
      throw dataCorrupt('CLIP_ZRAN_BUILD', `gzip checkpoints: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    // Points come at exact output offsets inside this push's output: hash up to each, then switch.
    let pos = 0;
    for (const p of r.points) {
      const upto = p.out - this.#out;
      this.#hash?.update(r.output.subarray(pos, upto));
      pos = upto;
      if (this.#hash) this.#hashes.push(this.#hash.digest());
      this.#hash = createHash('sha256');
      this.#points.push({ in: p.in, out: p.out, bits: p.bits, window: p.window });
    }
    this.#hash?.update(r.output.subarray(pos));
    this.#out += r.output.length;
  }

  /** The table, or undefined when the layer is under the size threshold. */
  finish(): GzipCheckpointTable | undefined {
    this.#ended = true;
    const end = this.#z.indexerEnd(this.#ix);
    if (!end.complete) throw dataCorrupt('CLIP_ZRAN_BUILD', 'gzip checkpoints: the gzip stream ended early');
    if (this.#hash) this.#hashes.push(this.#hash.digest());
    if (this.#in < this.#minLayerBytes || this.#points.length === 0) return undefined;
    const points = this.#points.map((p, i) => ({ ...p, sha256: this.#hashes[i] as Buffer }));
    return { spanBytes: this.#spanBytes, compressedSize: this.#in, uncompressedSize: this.#out, points };
  }
}
