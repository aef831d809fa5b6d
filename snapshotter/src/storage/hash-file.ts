/**
 * A whole file's sha256 (a completed layer checked against its diffID, a cached layer checked at
 * first use) computed on a worker thread. Hashing a multi-GB layer inline took seconds of the one
 * thread that serves every FUSE read: a second container reading what is already on disk waited
 * behind the completion of the layers it was not reading (issue 15). Inline only when no worker
 * can be started.
 */
import { stat } from 'node:fs/promises';
import { unavailable } from '../errors/index.js';
import { WorkerChannel } from '../util/worker-channel.js';
import { sha256File } from './sha256-file.js';

/** The slowest disk read this deadline allows for (bytes/s), and its floor: a worker that has not answered by then is replaced. */
const MIN_BYTES_PER_SEC = 4 * 1024 * 1024;
const MIN_DEADLINE_MS = 60_000;

const channel = new WorkerChannel<{ path: string }, string>(new URL('./hash-file-worker.js', import.meta.url), {
  timeoutError: (ms) => unavailable('CLIP_LAYER_READ_TIMEOUT', `sha256 of a layer file not computed by its worker within ${ms} ms`),
});

/** Counters (tests): files hashed on the worker, and inline. */
export const hashFileStats = { offThread: 0, inline: 0 };

/** The sha256 hex of a file, hashed on a worker thread (inline only when none can be started). */
export async function hashFile(path: string): Promise<string> {
  const { size } = await stat(path);
  const call = channel.call({ path }, [], Math.max(MIN_DEADLINE_MS, (size / MIN_BYTES_PER_SEC) * 1000));
  if (call) {
    const hex = await call;
    hashFileStats.offThread++;
    return hex;
  }
  hashFileStats.inline++;
  return hashFileInline(path);
}

/** The sha256 hex of a file, streamed in 1 MiB reads on this thread. */
export const hashFileInline = sha256File;
