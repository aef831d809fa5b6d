/** Positional file I/O that loops over short reads and writes (FileHandle may return fewer bytes). */
import type { FileHandle } from 'node:fs/promises';

/** Read up to `length` bytes at `position` into `buf` at `bufOffset`; fewer only at end of file. */
export async function preadFull(fh: FileHandle, buf: Buffer, bufOffset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, bufOffset + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

/** Write `buf[from..]` at `position`, all of it. */
export async function pwriteFull(fh: FileHandle, buf: Buffer, from: number, position: number): Promise<void> {
  let done = from;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done - from);
    done += bytesWritten;
  }
}
