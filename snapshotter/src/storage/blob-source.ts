/**
 * The storage layer's only view of a registry: a compressed layer blob as a stream, and whether it
 * exists. Narrow on purpose, so tests can inject fakes and fault injection at this seam.
 */
import type { Readable } from 'node:stream';
import type { LayerRef } from './layer-reader.js';

/** Where compressed layer blobs come from (the registry in production). */
export interface BlobSource {
  /** Open the whole compressed blob of `ref.digest`; aborting `signal` must end the stream. */
  open(ref: LayerRef, signal: AbortSignal): Promise<Readable>;
  /** True when the registry answers a HEAD for the blob. Throws `unavailable` when it cannot ask. */
  exists(ref: LayerRef, signal: AbortSignal): Promise<boolean>;
  /**
   * Compressed bytes [start, end) of the blob (HTTP Range), exactly that many; optional. Throws
   * when the registry ignores the Range header. Only the range-read tier uses it.
   */
  fetchRange?(ref: LayerRef, start: number, end: number, signal: AbortSignal): Promise<Buffer>;
  /**
   * True when a stream from `open` fails unless its bytes hash to `ref.digest` (checked before it
   * ends). Only then does a layer that inflates to another diffID prove its *blob* wrong (and get
   * quarantined) rather than the bytes of one transfer.
   */
  readonly verifiesDigest?: boolean;
}
