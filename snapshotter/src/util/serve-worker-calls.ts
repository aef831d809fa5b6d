/** The worker-thread side of `WorkerChannel`: answer each request with `handle`'s value or failure. */
import { parentPort, type Transferable } from 'node:worker_threads';

/** Serve requests on this worker thread; `transfer` lists buffers moved (not copied) back. */
export function serveWorkerCalls<Q, R>(handle: (req: Q) => { value: R; transfer?: Transferable[] }): void {
  parentPort?.on('message', (m: { id: number; req: Q }) => {
    try {
      const { value, transfer } = handle(m.req);
      parentPort?.postMessage({ id: m.id, value }, transfer ?? []);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      parentPort?.postMessage({
        id: m.id,
        error: { message: err instanceof Error ? err.message : String(err), ...(typeof code === 'string' ? { code } : {}) },
      });
    }
  });
}
