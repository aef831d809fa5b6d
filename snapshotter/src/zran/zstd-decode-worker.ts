/** Worker thread body: decodes zstd spans with fzstd off the daemon's event loop (zstd-decode-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { decompress } from 'fzstd';

interface Request {
  id: number;
  data: Uint8Array;
}

parentPort?.on('message', (m: Request) => {
  try {
    const out = decompress(m.data);
    parentPort?.postMessage({ id: m.id, out }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort?.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
});
