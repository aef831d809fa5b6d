/**
 * A mount's reader that can be cut off: once its index is found not to describe its layer
 * (`index-check.ts`), every read and check through that mount fails with the quarantine error
 * (EIO to the container), while other mounts of the same layer keep reading.
 */
import type { ClipError } from '../errors/index.js';
import type { LayerReader, LayerRef } from '../storage/index.js';

/** Wraps a LayerReader; `revoke` makes it fail from then on. */
export class RevocableReader implements LayerReader {
  readonly #inner: LayerReader;
  #revoked: ClipError | undefined;

  constructor(inner: LayerReader) {
    this.#inner = inner;
  }

  get layer(): LayerRef {
    return this.#inner.layer;
  }

  /** The error every later read and check fails with (the first revoke wins). */
  revoke(err: ClipError): void {
    this.#revoked ??= err;
  }

  get revoked(): ClipError | undefined {
    return this.#revoked;
  }

  read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
    if (this.#revoked) return Promise.reject(this.#revoked);
    return this.#inner.read(buf, bufOffset, length, offset);
  }

  async check(): Promise<void> {
    if (this.#revoked) throw this.#revoked;
    await this.#inner.check();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
