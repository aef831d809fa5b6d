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
  readonly readNow?: LayerReader['readNow'];
  readonly diskRange?: LayerReader['diskRange'];

  constructor(inner: LayerReader) {
    this.#inner = inner;
    // The inner reader's fast paths (page cache, splice) until revoked; then every read takes
    // `read`, which fails with the quarantine error.
    const readNow = inner.readNow?.bind(inner);
    if (readNow) this.readNow = (buf, bufOffset, length, offset) => (this.#revoked ? 0 : readNow(buf, bufOffset, length, offset));
    const diskRange = inner.diskRange?.bind(inner);
    if (diskRange) this.diskRange = (offset, length) => (this.#revoked ? undefined : diskRange(offset, length));
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
