/** Worker thread body: every check of a clip index, off the event loop (decode-index-off-thread.ts). */
import { serveWorkerCalls } from '../util/serve-worker-calls.js';
import { checkIndex } from './decode-index.js';
import type { IndexCheckRequest } from './decode-index-off-thread.js';

serveWorkerCalls<IndexCheckRequest, Uint8Array>(({ bytes, limits }) => {
  const { payload } = checkIndex(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), limits);
  // Handed back, not copied: a buffer of its own, so moving it takes nothing else along.
  const own = payload.byteOffset === 0 && payload.byteLength === payload.buffer.byteLength ? payload : Buffer.from(payload);
  const out = new Uint8Array(own.buffer, own.byteOffset, own.byteLength);
  return { value: out, transfer: [out.buffer as ArrayBuffer] };
});
