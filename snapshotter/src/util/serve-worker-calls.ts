/** The worker-thread side of `WorkerChannel`: answer each request with `handle`'s value or failure. */
import { parentPort, type Transferable } from 'node:worker_threads';

type Answer<R> = { value: R; transfer?: Transferable[] };

/**
 * Serve requests on this worker thread; `transfer` lists buffers moved (not copied) back. A handler
 * may answer later (a promise): requests are then served concurrently and answered as they finish.
 */
export function serveWorkerCalls<Q, R>(handle: (req: Q) => Answer<R> | Promise<Answer<R>>): void {
  parentPort?.on('message', async (m: { id: number; req: Q }) => {
    try {
      const { value, transfer } = await handle(m.req);
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
