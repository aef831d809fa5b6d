/**
 * Turns a compressed layer blob into its uncompressed tar stream, choosing the codec from the
 * blob's first bytes rather than from a media type that mirrors and converters get wrong.
 */
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { dataCorrupt, messageOf } from '../errors/index.js';
import { STORAGE_ERROR_CODES } from './errors.js';

const zstdError = (err: unknown) => dataCorrupt(STORAGE_ERROR_CODES.decompressFailed, `zstd: ${messageOf(err)}`, err);

/** The codecs a layer blob may use. */
export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** The codec named by a blob's first bytes (at least 4 of them, unless the blob is shorter). */
export function detectCompression(head: Uint8Array): Compression {
  const starts = (magic: number[]) => magic.every((b, i) => head[i] === b);
  if (starts(GZIP_MAGIC)) return 'gzip';
  // A skippable frame (0x184D2A50–5F) may open a zstd stream: pzstd writes one before each frame.
  const skippable = head.length >= 4 && (head[0] as number) >> 4 === 0x5 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18;
  if (starts(ZSTD_MAGIC) || skippable) return 'zstd';
  return 'none';
}

/**
 * zstd through fzstd (node 20's zlib has no zstd). fzstd is synchronous JavaScript, so each input
 * chunk costs main-thread time proportional to its output; chunks stay small (stream highWaterMark).
 */
class ZstdTransform extends Transform {
  #dec = new ZstdDecompress((data) => {
    // fzstd may hand out views of its window buffer that it later overwrites.
    if (data.length > 0) this.push(Buffer.from(data));
  });

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#dec.push(chunk);
      cb();
    } catch (err) {
      cb(zstdError(err));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#dec.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(zstdError(err));
    }
  }
}

/** A transform that decompresses `compression`. */
export function createDecompressor(compression: Compression): Transform {
  switch (compression) {
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return new ZstdTransform();
    case 'none':
      return new Transform({ transform: (chunk, _enc, cb) => cb(null, chunk) });
    default: {
      const never: never = compression;
      throw new Error(`unknown compression ${String(never)}`);
    }
  }
}

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
