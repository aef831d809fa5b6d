/** Worker thread body: decodes zstd spans with fzstd off the daemon's event loop (zstd-decode-pool.ts). */
import { decompress } from 'fzstd';
import { serveWorkerCalls } from '../util/serve-worker-calls.js';

serveWorkerCalls<Uint8Array, Uint8Array>((data) => {
  const out = decompress(data);
  return { value: out, transfer: [out.buffer as ArrayBuffer] };
});
