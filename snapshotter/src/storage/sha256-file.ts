/** A file's sha256, streamed in 1 MiB reads on the calling thread (the event loop or `hash-file-worker.ts`). */
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';

/** The sha256 hex of the file at `path`. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
