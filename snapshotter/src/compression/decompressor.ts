/** Turns a compressed layer blob into its uncompressed tar stream, for the codec `detectCompression` named. */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { messageOf } from '../errors/index.js';
import type { Compression } from './compression.js';
import { decompressFailed } from './decompress-error.js';

const zstdError = (err: unknown) => decompressFailed(`zstd: ${messageOf(err)}`, err);

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

