/** Compression detection by magic bytes and the matching streaming decompressors. */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import type { Compression } from './types.js';

/** Bytes needed to recognise every supported format. */
export const MAGIC_BYTES = 4;

/** Detect gzip (1f 8b) or zstd (28 b5 2f fd); anything else is taken as a plain tar. */
export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** A Transform that inflates the given compression (undefined for 'none'). */
export function createDecompressor(compression: Compression): Transform | undefined {
  switch (compression) {
    case 'gzip': return createGunzip({ chunkSize: 64 * 1024 });
    case 'zstd': return new ZstdTransform();
    case 'none': return undefined;
  }
}

/** Wraps fzstd's push-based streaming decoder as a Node Transform. */
class ZstdTransform extends Transform {
  #z: Decompress;

  constructor() {
    super();
    this.#z = new Decompress((data) => {
      // fzstd may hand out views of its own window or of our input: copy before passing downstream.
      if (data.length > 0) this.push(Buffer.from(data));
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#z.push(chunk);
      cb();
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.#z.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
