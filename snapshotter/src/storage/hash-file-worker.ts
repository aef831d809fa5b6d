/** Worker thread body: a file's sha256, read and hashed off the event loop (`hash-file.ts`). */
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { serveWorkerCalls } from '../util/serve-worker-calls.js';

serveWorkerCalls<{ path: string }, string>(async ({ path }) => {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return { value: hash.digest('hex') };
});
