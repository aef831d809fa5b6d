/**
 * zstd span decoding on a worker thread. fzstd is synchronous JavaScript: inline, a 4–8 MiB span
 * holds the event loop that serves every FUSE request for 40–100 ms. One long-lived worker (started
 * on first use, kept only while decodes are pending) takes that off the loop; if a worker cannot be
 * started the decode runs inline, as before.
 */
import { decompress } from 'fzstd';
import { WorkerChannel } from '../util/worker-channel.js';

const channel = new WorkerChannel<Uint8Array, Uint8Array>(new URL('./zstd-decode-worker.js', import.meta.url));

/** Decode whole zstd frames; rejects with fzstd's error when they do not decode. */
export function decodeZstdOffThread(compressed: Uint8Array): Promise<Uint8Array> {
  const copy = new Uint8Array(compressed);
  return channel.call(copy, [copy.buffer]) ?? Promise.resolve().then(() => decompress(compressed));
}
