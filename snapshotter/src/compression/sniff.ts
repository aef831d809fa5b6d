/** Looking at the first bytes of a stream without consuming them (to detect its compression). */
import { Readable } from 'node:stream';

/**
 * Read the first `min` bytes of `src` (fewer when it is shorter) without losing them: returns the
 * head and a stream that still yields every byte from the start.
 */
export function sniff(src: Readable, min = 4): Promise<{ head: Buffer; stream: Readable }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      src.off('readable', onReadable);
      src.off('end', onEnd);
      src.off('error', onError);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while (size < min && (chunk = src.read() as Buffer | null) !== null) {
        parts.push(chunk);
        size += chunk.length;
      }
      if (size < min) return;
      cleanup();
      const head = Buffer.concat(parts);
      src.unshift(head);
      resolve({ head, stream: src });
    };
    const onEnd = () => {
      cleanup();
      const head = Buffer.concat(parts);
      resolve({ head, stream: Readable.from(head.length > 0 ? [head] : []) });
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    src.on('readable', onReadable);
    src.once('end', onEnd);
    src.once('error', onError);
  });
}
