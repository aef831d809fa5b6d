/**
 * Chunks for sequential readers fetched on a worker thread (`bulk-chunk-worker.ts`) that owns its
 * own Redis connection: receiving a 4 MiB reply, decoding it and hashing it against the signed
 * manifest all happen there, and the checked bytes are moved (not copied) to this thread, whose
 * event loop serves every FUSE read. Only for a standalone Redis over plain TCP (the worker's client
 * speaks neither TLS nor Cluster); the caller fetches in-thread otherwise, or when no worker starts.
 */
import { ClipError, CLIP_ERROR_KINDS, messageOf, unavailable, type ClipErrorCode } from '../errors/index.js';
import { WorkerChannel, type WorkerFailure } from '../util/worker-channel.js';
import type { ChunkCheck } from './chunk-codec.js';
import type { RespGetClientOptions } from './resp-get-client.js';

/** One chunk to fetch (its Redis key, its decoded length, what it must match), or a ping once the worker has loaded. */
export type BulkRequest = ({ op: 'fetch' } & BulkFetch) | { op: 'ping' };

/** One chunk to fetch. */
export interface BulkFetch {
  key: string;
  expectedLength: number;
  /** Longest value accepted (a chunk is stored raw or smaller: 1 + its length). */
  maxBytes: number;
  check: ChunkCheck;
  /** Memory of a chunk the event loop no longer holds, moved back to be received into again. */
  spare?: ArrayBuffer;
}

/** A fetched chunk: its bytes (v3: which pieces matched their digests), absent, or refused. */
export type BulkFetched =
  | { type: 'ok'; data: Uint8Array; checked?: Uint8Array }
  | { type: 'missing' }
  | { type: 'corrupt'; reason: string }
  | { type: 'ready' };

/** How long a starting worker may take to load before it is given up on (a busy node loads modules slowly). */
const START_DEADLINE_MS = 60_000;

const isCode = (c: string): c is ClipErrorCode => Object.hasOwn(CLIP_ERROR_KINDS, c);

/** A failure in the worker: its ClipError when it carried a code (an outage is `unavailable`), else `unavailable`. */
function toError(f: WorkerFailure): Error {
  if (f.code !== undefined && isCode(f.code)) return new ClipError(CLIP_ERROR_KINDS[f.code], f.code, f.message);
  return unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk fetch failed in its worker: ${f.message}`);
}

/**
 * The event loop's side of the bulk worker: one per ContentCache, started on first use. Until it
 * has loaded and answered a ping, `fetch` declines (the caller fetches in-thread), so a request's
 * deadline never includes the worker's start-up.
 */
export class BulkChunkFetcher {
  readonly #channel: WorkerChannel<BulkRequest, BulkFetched>;
  readonly #deadlineMs: number;
  #ready: Promise<boolean> | undefined;
  #isReady = false;

  /** `endpoint.timeoutMs` bounds each GET in the worker; a worker silent for twice that (+1 s) is replaced. */
  constructor(endpoint: RespGetClientOptions) {
    this.#deadlineMs = 2 * endpoint.timeoutMs + 1_000;
    this.#channel = new WorkerChannel<BulkRequest, BulkFetched>(new URL('./bulk-chunk-worker.js', import.meta.url), {
      workerData: endpoint,
      toError,
      timeoutError: (ms) => unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk worker did not answer within ${ms} ms`),
    });
  }

  /** Whether the worker was asked to start (and has not failed to). */
  get started(): boolean {
    return this.#ready !== undefined || this.#isReady;
  }

  /** Start the worker (once; again after it failed); resolves true once it answers, false if it cannot start. */
  start(): Promise<boolean> {
    this.#ready ??= (async () => {
      const ping = this.#channel.call({ op: 'ping' }, [], START_DEADLINE_MS);
      const ok = ping !== undefined && (await ping.then((r) => r.type === 'ready', () => false));
      this.#isReady = ok;
      // A failed start is tried again by a later fetch.
      if (!ok) this.#ready = undefined;
      return ok;
    })();
    return this.#ready;
  }

  /**
   * Fetch and check one chunk; undefined while the worker is starting or when none can run (fetch
   * it in-thread). Rejects `unavailable` on an outage.
   */
  async fetch(key: string, expectedLength: number, check: ChunkCheck, spare?: ArrayBuffer): Promise<{ type: 'ok'; data: Buffer; checked?: Uint8Array } | { type: 'missing' } | { type: 'corrupt'; reason: string } | undefined> {
    if (!this.#isReady) {
      void this.start();
      return undefined;
    }
    const r = this.#channel.call({ op: 'fetch', key, expectedLength, maxBytes: expectedLength + 1, check, ...(spare ? { spare } : {}) }, spare ? [spare] : [], this.#deadlineMs);
    if (r === undefined) return undefined;
    // A worker that died (or could not load) rejects with a plain Error: still an outage of this path.
    const d = await r.catch((err: unknown) => {
      throw err instanceof ClipError ? err : unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk worker: ${messageOf(err)}`, err);
    });
    if (d.type === 'ready') throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'content cache bulk worker answered a fetch with a ping');
    if (d.type !== 'ok') return d;
    const data = Buffer.from(d.data.buffer, d.data.byteOffset, d.data.byteLength);
    return d.checked ? { type: 'ok', data, checked: d.checked } : { type: 'ok', data };
  }

  /** Stop the worker and its connection. */
  close(): Promise<void> {
    this.#isReady = false;
    this.#ready = undefined;
    return this.#channel.terminate();
  }
}
