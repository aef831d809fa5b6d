/** Worker thread body: signed chunks inflated and hashed, and piece digests computed, off the event loop (chunk-check-off-thread.ts). */
import { serveWorkerCalls } from '../util/serve-worker-calls.js';
import { decodeChunkSync, pieceDigests } from './chunk-codec.js';
import type { ChunkWork, ChunkWorkResult } from './chunk-check-off-thread.js';

const asBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

/** `b` as a Uint8Array whose memory is its own, so moving it back takes nothing else along. */
function own(b: Buffer): Uint8Array {
  const o = b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : Buffer.from(b);
  return new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
}

serveWorkerCalls<ChunkWork, ChunkWorkResult>((work) => {
  if (work.op === 'pieces') {
    return { value: { type: 'pieces', digests: pieceDigests(asBuffer(work.data), work.pieceBytes), data: work.data }, transfer: [work.data.buffer as ArrayBuffer] };
  }
  const d = decodeChunkSync(asBuffer(work.value), work.expectedLength, { sha256: work.sha256 });
  if (d.type !== 'ok') return { value: d };
  // A raw chunk is the value less its first byte: handed back whole, as a view.
  if (d.data.buffer === work.value.buffer) {
    return { value: { type: 'ok', data: new Uint8Array(work.value.buffer, d.data.byteOffset, d.data.byteLength) }, transfer: [work.value.buffer as ArrayBuffer] };
  }
  const out = own(d.data);
  return { value: { type: 'ok', data: out }, transfer: [out.buffer as ArrayBuffer] };
});
