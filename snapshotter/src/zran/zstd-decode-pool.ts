/**
 * zstd span decoding on a worker thread. fzstd is synchronous JavaScript: inline, a 4–8 MiB span
 * holds the event loop that serves every FUSE request for 40–100 ms. One long-lived worker (started
 * on first use, kept only while decodes are pending) takes that off the loop; if a worker cannot be
 * started the decode runs inline, as before.
 */
import { Worker } from 'node:worker_threads';
import { decompress } from 'fzstd';

interface Reply {
  id: number;
  out?: Uint8Array;
  error?: string;
}

let worker: Worker | undefined;
let failed = false;
let nextId = 0;
const pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();

function settleAll(err: Error): void {
  for (const p of pending.values()) p.reject(err);
  pending.clear();
}

function getWorker(): Worker | undefined {
  if (worker || failed) return worker;
  try {
    const w = new Worker(new URL('./zstd-decode-worker.js', import.meta.url));
    w.on('message', (m: Reply) => {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (pending.size === 0) w.unref();
      if (m.out) p.resolve(m.out);
      else p.reject(new Error(m.error ?? 'zstd worker: no output'));
    });
    // A dead worker fails what it held; the next decode starts a new one.
    w.on('error', (err) => {
      if (worker === w) worker = undefined;
      settleAll(err);
    });
    w.on('exit', () => {
      if (worker === w) worker = undefined;
      settleAll(new Error('zstd worker exited'));
    });
    w.unref();
    worker = w;
  } catch {
    failed = true;
  }
  return worker;
}

/** Decode whole zstd frames; rejects with fzstd's error when they do not decode. */
export function decodeZstdOffThread(compressed: Uint8Array): Promise<Uint8Array> {
  const w = getWorker();
  if (!w) return Promise.resolve().then(() => decompress(compressed));
  const id = nextId++;
  const copy = new Uint8Array(compressed);
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, data: copy }, [copy.buffer]);
  });
}
