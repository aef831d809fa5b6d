/**
 * A pass-through that holds a response body to the length the request asked for: a registry (or
 * anything between it and us) that sends more fails the stream as soon as the surplus arrives,
 * instead of a consumer buffering an unbounded body before checking it; one that sends less fails
 * it at the end instead of handing on a short range.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { ClipError } from '../errors/index.js';
import { unavailable } from './registry-errors.js';

/** Passes exactly `length` bytes; more is data_corrupt (`CLIP_REGISTRY_BODY_TOO_LONG`), fewer unavailable. */
export class ExactLength extends Transform {
  readonly #length: number;
  readonly #what: string;
  #seen = 0;

  constructor(length: number, what: string) {
    super();
    this.#length = length;
    this.#what = what;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#length) {
      done(new ClipError('data_corrupt', 'CLIP_REGISTRY_BODY_TOO_LONG', `${this.#what}: the registry sent more than the ${this.#length} bytes asked for`));
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    if (this.#seen < this.#length) done(unavailable(`${this.#what}: body ended after ${this.#seen} of ${this.#length} bytes`));
    else done();
  }
}
