/**
 * Signed ContentCache chunks checked on worker threads. A 4 MiB chunk's SHA-256 takes a few ms
 * (more on a busy node): inline, every chunk a warm node fetches — read-ahead included — held the
 * event loop that serves every FUSE read while it was hashed. The chunk value moves to a worker
 * (not copied: a copy on this thread costs about what the hash does), which inflates it, checks its
 * length and digest, and moves the bytes back. Small chunks, CRC-only (v1) chunks, and any chunk
 * when no worker can be started are decoded here, as before.
 */
import { webcrypto } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { ClipError, CLIP_ERROR_KINDS, internal, type ClipErrorCode } from '../errors/index.js';
import { WorkerChannel, type WorkerFailure } from '../util/worker-channel.js';
import { decodeChunk, pieceDigests, type ChunkCheck, type ChunkPieces, type Decoded } from './chunk-codec.js';

/** What a worker is sent: a chunk value (moved to it) and what it must decode to. */
export type ChunkWork =
  | { op: 'check'; value: Uint8Array; expectedLength: number; sha256: string }
  | { op: 'pieces'; data: Uint8Array; pieceBytes: number };

/** A worker's answer: the checked bytes (moved back), why they were refused, or piece digests and the bytes. */
export type ChunkWorkResult =
  | { type: 'ok'; data: Uint8Array }
  | { type: 'corrupt'; reason: string }
  | { type: 'pieces'; digests: string[]; data: Uint8Array };

/** Chunks smaller than this are checked inline: the round trip costs about what hashing them does. */
export const OFF_THREAD_FROM_BYTES = 256 << 10;
/** A worker that has not answered by then is replaced and the read treats the chunk as a miss. */
const CHECK_DEADLINE_MS = 30_000;

const isCode = (c: string): c is ClipErrorCode => Object.hasOwn(CLIP_ERROR_KINDS, c);

function toError(f: WorkerFailure): Error {
  if (f.code !== undefined && isCode(f.code)) return new ClipError(CLIP_ERROR_KINDS[f.code], f.code, f.message);
  return internal('CLIP_CONTENT_CACHE_CHECK_FAILED', `content cache chunk check failed in its worker: ${f.message}`);
}

// One worker per spare core (at most 4): the event loop keeps a core, hashing takes the others.
const channels = Array.from(
  { length: Math.max(1, Math.min(4, availableParallelism() - 1)) },
  () =>
    new WorkerChannel<ChunkWork, ChunkWorkResult>(new URL('./chunk-check-worker.js', import.meta.url), {
      toError,
      timeoutError: (ms) => internal('CLIP_CONTENT_CACHE_CHECK_FAILED', `content cache chunk not checked by its worker within ${ms} ms`),
    }),
);
let turn = 0;

function call(work: ChunkWork, moved: ArrayBuffer): Promise<ChunkWorkResult> | undefined {
  const channel = channels[turn++ % channels.length] as (typeof channels)[number];
  return channel.call(work, [moved], CHECK_DEADLINE_MS);
}

/** A Uint8Array over bytes that can be moved to another thread: `b` itself when it owns its memory, else a copy. */
function movable(b: Buffer): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) return new Uint8Array(b.buffer, 0, b.byteLength);
  return new Uint8Array(b);
}

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/**
 * `decodeChunk`, with a chunk signed whole (v2) of at least `offThreadFrom` bytes inflated and
 * hashed on a worker thread. A v3 chunk is decoded here (LZ4 on libuv's pool): its pieces are hashed
 * only as reads reach them (`checkPieces`). `value` must not be used afterwards (its memory may have
 * moved to the worker).
 */
export async function decodeChunkOffThread(value: Buffer, expectedLength: number, expected: ChunkCheck, offThreadFrom = OFF_THREAD_FROM_BYTES): Promise<Decoded> {
  if (!('sha256' in expected) || expectedLength < offThreadFrom) return decodeChunk(value, expectedLength, expected);
  const moved = movable(value);
  const r = call({ op: 'check', value: moved, expectedLength, sha256: expected.sha256 }, moved.buffer as ArrayBuffer);
  if (r === undefined) return decodeChunk(asBuffer(moved), expectedLength, expected);
  const d = await r;
  if (d.type === 'ok') return { type: 'ok', data: asBuffer(d.data) };
  if (d.type === 'corrupt') return d;
  throw internal('CLIP_CONTENT_CACHE_CHECK_FAILED', 'content cache chunk worker answered a check with a digest');
}

/**
 * The SHA-256s (hex) of `data`'s pieces (a v3 manifest's record of a chunk), computed on a worker
 * thread when `data` is large; resolves with the digests and the bytes (moved there and back, so
 * use the returned buffer, not `data`).
 */
export async function pieceDigestsOffThread(data: Buffer, pieceBytes: number, offThreadFrom = OFF_THREAD_FROM_BYTES): Promise<{ digests: string[]; data: Buffer }> {
  if (data.length < offThreadFrom) return { digests: pieceDigests(data, pieceBytes), data };
  const moved = movable(data);
  const r = call({ op: 'pieces', data: moved, pieceBytes }, moved.buffer as ArrayBuffer);
  if (r === undefined) {
    const back = asBuffer(moved);
    return { digests: pieceDigests(back, pieceBytes), data: back };
  }
  const d = await r;
  if (d.type !== 'pieces') throw internal('CLIP_CONTENT_CACHE_CHECK_FAILED', 'content cache chunk worker answered a digest with a check');
  return { digests: d.digests, data: asBuffer(d.data) };
}

/**
 * Check every piece of a decoded v3 chunk against its signed digest on libuv's thread pool
 * (WebCrypto's digest copies each piece there and hashes it off the event loop), marking in
 * `checked` those that match. For chunks fetched ahead of a sequential reader, which will read all
 * of them: the reads then copy bytes without hashing on the event loop. A piece that does not
 * match stays unmarked, so the read that reaches it hashes it again and fails the usual way.
 */
export async function checkPiecesAhead(data: Buffer, pieces: ChunkPieces, checked: Uint8Array): Promise<void> {
  const { pieceBytes, sha256 } = pieces;
  await Promise.all(
    sha256.map(async (want, j) => {
      if (checked[j] === 1) return;
      const got = Buffer.from(await webcrypto.subtle.digest('SHA-256', data.subarray(j * pieceBytes, (j + 1) * pieceBytes))).toString('hex');
      if (got === want) checked[j] = 1;
    }),
  );
}
