/**
 * Builds a zstd frame table while the index builder streams a zstd layer. It is the index
 * builder's decompressor for that layer (one decode, not two): the frame scanner splits the
 * compressed stream at frame boundaries, each frame is decoded by its own fzstd decoder (exactly
 * what fzstd does inside one multi-frame stream), and the output is hashed span by span on its
 * way to the tar parser. A span closes at the first frame end after `spanBytes` of output.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { Decompress } from 'fzstd';
import { decompressFailed } from '../compression/index.js';
import { messageOf } from '../errors/index.js';
import { DEFAULT_MIN_LAYER_BYTES, DEFAULT_SPAN_BYTES } from './checkpoint-builder.js';
import { ZstdFrameScanner, type ScannedFrame } from './zstd-frame-scanner.js';
import type { ZstdFrameTable, ZstdSpan } from './zstd-frame-table.js';

export interface ZstdFrameBuilderOptions {
  /** Uncompressed bytes per span (at least; spans end at frame boundaries). */
  spanBytes?: number;
  /** Compressed layers smaller than this get no table (fetched whole). */
  minLayerBytes?: number;
}

/**
 * Layers with a frame larger than this get no table: a read inside it would decode the whole
 * frame in memory, on the event loop, where the whole-layer download streams to disk.
 */
export const MAX_ZSTD_FRAME_BYTES = 64 * 1024 * 1024;
/** Frames asking for a bigger window (`zstd --long`) get no table either, for the same reason. */
export const MAX_ZSTD_WINDOW_BYTES = 128 * 1024 * 1024;

type OpenSpan = { in: number; inEnd: number; out: number; frames: number; hash: Hash };

/** Any failure here is the layer's: report it as the plain zstd decoder would. */
const decodeError = (err: unknown) => decompressFailed(`zstd: ${messageOf(err)}`, err);

/** Streaming decoder + table builder; `push` every compressed byte in order, `end`, then `finish`. */
export class ZstdFrameBuilder {
  readonly #spanBytes: number;
  readonly #minLayerBytes: number;
  readonly #scanner: ZstdFrameScanner;
  readonly #spans: ZstdSpan[] = [];
  #open: OpenSpan | undefined;
  #decoder: Decompress | undefined;
  #emit: (out: Buffer) => void = () => {};
  #out = 0;
  #frameOut = 0;
  #frames = 0;
  /** Why this layer gets no table even if it has enough spans. */
  #unfit: string | undefined;
  #ended = false;

  constructor(opts: ZstdFrameBuilderOptions = {}) {
    this.#spanBytes = opts.spanBytes ?? DEFAULT_SPAN_BYTES;
    this.#minLayerBytes = opts.minLayerBytes ?? DEFAULT_MIN_LAYER_BYTES;
    this.#scanner = new ZstdFrameScanner({
      frameStart: (start) => this.#frameStart(start),
      frameBytes: (bytes) => (this.#decoder as Decompress).push(bytes),
      frameEnd: (f) => this.#frameEnd(f),
    });
  }

  /** Decode the next compressed chunk, handing its output to `emit`; throws data_corrupt. */
  push(chunk: Buffer, emit: (out: Buffer) => void): void {
    this.#emit = emit;
    try {
      this.#scanner.push(chunk);
    } catch (err) {
      throw decodeError(err);
    }
  }

  /** The compressed stream ended; throws data_corrupt when it stopped inside a frame. */
  end(): void {
    this.#ended = true;
    try {
      this.#scanner.end();
    } catch (err) {
      throw decodeError(err);
    }
  }

  /** A Transform for `buildIndex`'s pipeline: compressed in, uncompressed out. */
  transform(): Transform {
    const b = this;
    return new Transform({
      transform(this: Transform, chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
        try {
          b.push(chunk, (out) => this.push(out));
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
      flush(cb: TransformCallback): void {
        try {
          b.end();
          cb();
        } catch (err) {
          cb(err as Error);
        }
      },
    });
  }

  /** Why the layer got no table, after `finish` returned undefined (logs, tests). */
  get skippedBecause(): string | undefined {
    return this.#unfit;
  }

  /** The table, or undefined when the layer is too small, a single span, or unfit (see above). */
  finish(): ZstdFrameTable | undefined {
    if (!this.#ended) throw new Error('ZstdFrameBuilder: finish before end');
    this.#closeSpan();
    const compressedSize = this.#scanner.position;
    if (compressedSize < this.#minLayerBytes) this.#unfit ??= `${compressedSize} compressed bytes is under the minimum`;
    if (this.#spans.length < 2) this.#unfit ??= `${this.#frames} frame(s) make ${this.#spans.length} span(s)`;
    if (this.#unfit !== undefined) return undefined;
    return { spanBytes: this.#spanBytes, frameCount: this.#frames, compressedSize, uncompressedSize: this.#out, spans: this.#spans };
  }

  #frameStart(start: number): void {
    this.#open ??= { in: start, inEnd: start, out: this.#out, frames: 0, hash: createHash('sha256') };
    this.#frameOut = this.#out;
    this.#decoder = new Decompress((data) => {
      if (data.length === 0) return;
      // fzstd hands out views of its window, which it overwrites later: copy before passing on.
      const out = Buffer.from(data);
      this.#open?.hash.update(out);
      this.#out += out.length;
      this.#emit(out);
    });
  }

  #frameEnd(f: ScannedFrame): void {
    if (f.skippable) return;
    (this.#decoder as Decompress).push(new Uint8Array(0), true);
    this.#decoder = undefined;
    this.#frames++;
    const span = this.#open as OpenSpan;
    span.frames++;
    span.inEnd = f.end;
    if (this.#out - this.#frameOut > MAX_ZSTD_FRAME_BYTES) this.#unfit ??= `a frame of ${this.#out - this.#frameOut} bytes`;
    if (f.windowSize > MAX_ZSTD_WINDOW_BYTES) this.#unfit ??= `a frame with a ${f.windowSize}-byte window`;
    if (f.dictionaryId !== 0) this.#unfit ??= 'a frame that needs a dictionary';
    if (this.#out - span.out >= this.#spanBytes) this.#closeSpan();
  }

  /** Close the open span; an empty one (trailing empty frames) joins the span before it. */
  #closeSpan(): void {
    const s = this.#open;
    this.#open = undefined;
    if (!s) return;
    const prev = this.#spans[this.#spans.length - 1];
    if (this.#out === s.out && prev) {
      this.#spans[this.#spans.length - 1] = { ...prev, inEnd: s.inEnd, frames: prev.frames + s.frames };
    } else if (this.#out > s.out) {
      this.#spans.push({ in: s.in, inEnd: s.inEnd, out: s.out, frames: s.frames, sha256: s.hash.digest() });
    }
  }
}
