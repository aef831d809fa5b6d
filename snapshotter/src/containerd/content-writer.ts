/**
 * containerd's content Write protocol: STAT (negotiates a resumable ref), WRITE chunks at
 * offsets, COMMIT with the expected size and digest and the labels to set.
 */
import type * as grpc from '@grpc/grpc-js';
import { dataCorrupt, isKind } from '../errors/index.js';
import { fromGrpcError } from './grpc-errors.js';
import type { Rpc } from './rpc.js';

const ACTION = { STAT: 0, WRITE: 1, COMMIT: 2 } as const;
const CHUNK = 1024 * 1024;

interface WireWriteResponse {
  offset: number;
  total: number;
  digest: string;
}

/** What to write: bytes in memory or a stream factory (which may be read from an offset). */
export type ContentSource = Buffer | ((offset: number) => AsyncIterable<Uint8Array>);

export interface WriteContentOptions {
  /** containerd's write ref: the same ref resumes an interrupted write. */
  ref: string;
  digest: string;
  size: number;
  labels?: Record<string, string>;
  data: ContentSource;
}

/** The result: `written` false when containerd already had the blob. */
export interface WriteContentResult {
  written: boolean;
}

// One request, one response: containerd's server answers every message in order.
class Exchange {
  readonly #call: grpc.ClientDuplexStream<unknown, unknown>;
  readonly #waiters: Array<{ resolve: (r: WireWriteResponse) => void; reject: (e: unknown) => void }> = [];
  #failed: unknown;

  constructor(call: grpc.ClientDuplexStream<unknown, unknown>) {
    this.#call = call;
    call.on('data', (msg: unknown) => this.#waiters.shift()?.resolve(msg as WireWriteResponse));
    call.on('error', (err: unknown) => this.#fail(err));
    call.on('end', () => this.#fail(new Error('write stream ended early')));
  }

  #fail(err: unknown): void {
    this.#failed ??= err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
  }

  send(req: Record<string, unknown>): Promise<WireWriteResponse> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#call.write(req);
    });
  }

  close(): void {
    this.#call.end();
    this.#call.cancel();
  }
}

async function* chunksOf(data: ContentSource, offset: number): AsyncGenerator<Uint8Array> {
  if (Buffer.isBuffer(data)) {
    for (let at = offset; at < data.length; at += CHUNK) yield data.subarray(at, Math.min(at + CHUNK, data.length));
    return;
  }
  for await (const piece of data(offset)) {
    for (let at = 0; at < piece.length; at += CHUNK) yield piece.subarray(at, Math.min(at + CHUNK, piece.length));
  }
}

/** Write one blob into containerd's content store and commit it with labels. */
export async function writeContent(rpc: Rpc, opts: WriteContentOptions): Promise<WriteContentResult> {
  const what = `content write ${opts.digest}`;
  const ex = new Exchange(rpc.duplex('Content', 'Write'));
  try {
    const stat = await ex.send({ action: ACTION.STAT, ref: opts.ref, total: opts.size, expected: opts.digest });
    let offset = Number(stat.offset);
    for await (const chunk of chunksOf(opts.data, offset)) {
      const res = await ex.send({ action: ACTION.WRITE, offset, data: chunk });
      if (Number(res.offset) !== offset + chunk.length) {
        throw dataCorrupt('CLIP_CONTAINERD_SHORT_WRITE', `${what}: containerd at offset ${res.offset}, expected ${offset + chunk.length}`);
      }
      offset += chunk.length;
    }
    const done = await ex.send({
      action: ACTION.COMMIT, offset, total: opts.size, expected: opts.digest, labels: opts.labels ?? {},
    });
    if (done.digest !== opts.digest) throw dataCorrupt('CLIP_CONTAINERD_DIGEST_MISMATCH', `${what}: committed as ${done.digest}`);
    return { written: true };
  } catch (err) {
    const mapped = fromGrpcError(err, what);
    if (isKind(mapped, 'already_exists')) return { written: false };
    throw mapped;
  } finally {
    ex.close();
  }
}
