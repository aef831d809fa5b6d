/**
 * One long-lived worker thread answering requests by id: started on first use, holding the process
 * open only while a request is pending. Synchronous work that would hold the event loop serving
 * every FUSE request (a zstd span, a large index's validation) runs there instead.
 */
import { Worker, type Transferable } from 'node:worker_threads';

/** What a worker sends back for one request (see `serveWorkerCalls`). */
interface Reply<R> {
  id: number;
  value?: R;
  error?: WorkerFailure;
}

/** A failure inside the worker, as it crosses the thread boundary. */
export interface WorkerFailure {
  message: string;
  code?: string;
}

export interface WorkerChannelOptions {
  /** Turns a worker's failure into the error the caller sees (default: a plain Error). */
  toError?: (f: WorkerFailure) => Error;
  /** Turns a missed deadline into the error the caller sees. */
  timeoutError?: (ms: number) => Error;
  /** Given to each worker started (`workerData`), e.g. where it connects. */
  workerData?: unknown;
}

export class WorkerChannel<Q, R> {
  readonly #url: URL;
  readonly #o: WorkerChannelOptions;
  #worker: Worker | undefined;
  #failed = false;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve: (v: R) => void; reject: (e: Error) => void }>();

  /** `url`: the worker's module, which calls `serveWorkerCalls`. */
  constructor(url: URL, o: WorkerChannelOptions = {}) {
    this.#url = url;
    this.#o = o;
  }

  /**
   * Send `req` (moving `transfer` to the worker); undefined when no worker can be started, so the
   * caller does the work inline. With `timeoutMs`, a request not answered in time rejects and the
   * worker, which may be stuck, is replaced.
   */
  call(req: Q, transfer: Transferable[] = [], timeoutMs?: number): Promise<R> | undefined {
    const w = this.#get();
    if (!w) return undefined;
    const id = this.#nextId++;
    return new Promise<R>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const settle = <A>(fn: (a: A) => void) => (a: A): void => {
        if (timer) clearTimeout(timer);
        fn(a);
      };
      this.#pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (!this.#pending.delete(id)) return;
          reject(this.#o.timeoutError?.(timeoutMs) ?? new Error(`worker did not answer within ${timeoutMs} ms`));
          void w.terminate();
        }, timeoutMs);
      }
      w.ref();
      w.postMessage({ id, req }, transfer);
    });
  }

  /** Stop the worker (what it held fails); a later call starts a new one. */
  async terminate(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    await w?.terminate();
  }

  #get(): Worker | undefined {
    if (this.#worker || this.#failed) return this.#worker;
    try {
      const w = new Worker(this.#url, this.#o.workerData === undefined ? {} : { workerData: this.#o.workerData });
      w.on('message', (m: Reply<R>) => this.#answer(w, m));
      // A dead worker fails what it held; the next call starts a new one.
      const fail = (err: Error): void => {
        if (this.#worker === w) this.#worker = undefined;
        for (const p of this.#pending.values()) p.reject(err);
        this.#pending.clear();
      };
      w.on('error', fail);
      w.on('exit', () => fail(new Error('worker exited')));
      w.unref();
      this.#worker = w;
    } catch {
      this.#failed = true;
    }
    return this.#worker;
  }

  #answer(w: Worker, m: Reply<R>): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (this.#pending.size === 0) w.unref();
    if (m.error) p.reject(this.#o.toError?.(m.error) ?? new Error(m.error.message));
    else p.resolve(m.value as R);
  }
}
