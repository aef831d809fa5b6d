/** Worker thread body: a file's sha256, read and hashed off the event loop (`hash-file.ts`). */
import { serveWorkerCalls } from '../util/serve-worker-calls.js';
import { sha256File } from './sha256-file.js';

serveWorkerCalls<{ path: string }, string>(async ({ path }) => ({ value: await sha256File(path) }));
