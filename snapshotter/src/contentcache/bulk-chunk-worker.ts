/**
 * Worker thread body of `bulk-chunk-fetcher.ts`: owns one Redis connection (`RespGetClient`) for a
 * sequential reader's chunks, and answers each request with the chunk decoded and checked against
 * its signed manifest entry — whole (v2), by CRC (v1), or every piece (v3: which ones matched) — its
 * bytes moved, not copied, to the event loop that serves FUSE reads.
 */
import { workerData } from 'node:worker_threads';
import { serveWorkerCalls } from '../util/serve-worker-calls.js';
import { SpareBufferPool } from '../util/spare-buffer-pool.js';
import { decodeChunkSync, pieceDigests } from './chunk-codec.js';
import type { BulkFetched, BulkRequest } from './bulk-chunk-fetcher.js';
import { RespGetClient, type RespGetClientOptions } from './resp-get-client.js';

/**
 * Chunk memory the event loop gave back (chunks it no longer holds), received into again: a new
 * 4 MiB buffer per chunk costs page faults here and, once moved, a garbage collection on the event
 * loop. A few at most, and none kept once reads pause.
 */
const spare = new SpareBufferPool({ maxCount: 4, idleMs: 1_000 });

const client = new RespGetClient(workerData as RespGetClientOptions, (bytes) => spare.take(bytes));

/** `b` as a Uint8Array over memory that holds nothing else, so moving it takes nothing else along. */
function own(b: Buffer, whole: ArrayBufferLike): Uint8Array {
  if (b.buffer === whole) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  const o = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b);
  return new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
}

serveWorkerCalls<BulkRequest, BulkFetched>(async (req) => {
  if (req.op === 'ping') return { value: { type: 'ready' } };
  if (req.spare) spare.keep(req.spare);
  const reply = await client.get(req.key, req.maxBytes);
  if (reply.type === 'null') return { value: { type: 'missing' } };
  if (reply.type === 'too_large') return { value: { type: 'corrupt', reason: `value of ${reply.bytes} bytes, at most ${req.maxBytes} expected` } };
  const d = decodeChunkSync(reply.value, req.expectedLength, req.check);
  // Not moved (refused, or inflated into other memory): the reply's memory is received into again.
  if (d.type !== 'ok' || d.data.buffer !== reply.value.buffer) spare.keep(reply.value.buffer);
  if (d.type !== 'ok') return { value: d };
  const data = own(d.data, reply.value.buffer);
  if (!('pieces' in req.check)) return { value: { type: 'ok', data }, transfer: [data.buffer as ArrayBuffer] };
  // Every piece hashed here: the reads that follow copy bytes. One that does not match stays
  // unmarked, and the read that reaches it refuses it (checkPieces).
  const want = req.check.pieces.sha256;
  const checked = Uint8Array.from(pieceDigests(d.data, req.check.pieces.pieceBytes), (got, j) => (got === want[j] ? 1 : 0));
  return { value: { type: 'ok', data, checked }, transfer: [data.buffer as ArrayBuffer] };
});
