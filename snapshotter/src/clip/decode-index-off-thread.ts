/**
 * Decoding large clip indexes on a worker thread. Validating every row is synchronous and linear in
 * the entry count (≈ 1 s per million entries here); inline it would hold the event loop that
 * serves every FUSE read of every layer while an index of up to `max_entries` is checked. Small
 * indexes decode inline: the round trip to the worker costs more than they do.
 */
import { ClipError, CLIP_ERROR_KINDS, internal, unavailable, type ClipErrorCode } from '../errors/index.js';
import { WorkerChannel, type WorkerFailure } from '../util/worker-channel.js';
import { decodeIndex, readerOfCheckedPayload } from './decode-index.js';
import type { ClipIndexReader } from './index-reader.js';
import type { ClipLimits } from './limits.js';

/** What the worker is sent: the encoded index (moved to it) and the limits it is checked against. */
export interface IndexCheckRequest {
  bytes: Uint8Array;
  limits: Partial<Pick<ClipLimits, 'maxEntries' | 'maxIndexBytes'>>;
}

/** Encoded indexes up to this size decode inline (a 256 KiB index holds ≈ 10k entries: a few ms). */
export const OFF_THREAD_ABOVE_BYTES = 256 << 10;
/** A decode the worker has not answered by then is abandoned (the worker is replaced). */
const DECODE_DEADLINE_MS = 120_000;

const isCode = (c: string): c is ClipErrorCode => Object.hasOwn(CLIP_ERROR_KINDS, c);

/** The worker's typed error again, with its kind and code, on this side of the thread boundary. */
function toError(f: WorkerFailure): Error {
  if (f.code !== undefined && isCode(f.code)) return new ClipError(CLIP_ERROR_KINDS[f.code], f.code, f.message);
  return internal('CLIP_INTERNAL', `clip index check failed in its worker: ${f.message}`);
}

const channel = new WorkerChannel<IndexCheckRequest, Uint8Array>(new URL('./decode-index-worker.js', import.meta.url), {
  toError,
  timeoutError: (ms) => unavailable('CLIP_INDEX_DECODE_TIMEOUT', `clip index: not checked within ${ms} ms`),
});

/**
 * `decodeIndex`, with the checks of an index larger than `offThreadAbove` bytes made on a worker
 * thread; the same errors (kind and code) either way.
 */
export async function decodeIndexOffThread(
  buf: Buffer,
  limits: IndexCheckRequest['limits'] = {},
  offThreadAbove = OFF_THREAD_ABOVE_BYTES,
): Promise<ClipIndexReader> {
  if (buf.length <= offThreadAbove) return decodeIndex(buf, limits);
  // A copy moves to the worker: the caller keeps its bytes (they are hashed, cached and stored).
  const bytes = new Uint8Array(buf);
  const checked = channel.call({ bytes, limits }, [bytes.buffer], DECODE_DEADLINE_MS);
  if (checked === undefined) return decodeIndex(buf, limits);
  const payload = await checked;
  return readerOfCheckedPayload(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), limits);
}
