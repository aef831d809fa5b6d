/**
 * Framing of the FUSE server socket: each message is a 4-byte big-endian length and that many
 * bytes of UTF-8 JSON. The length is bounded before anything is buffered, so a confused or hostile
 * peer cannot make either side allocate without limit.
 */
import { dataCorrupt } from '../errors/index.js';

/** Largest message either side accepts (the mounted-layers answer of a busy node is far below). */
export const MAX_FRAME_BYTES = 16 << 20;

/** One message as bytes on the wire. */
export function encodeFrame(message: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_FRAME_BYTES) throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `message of ${body.length} bytes is over the ${MAX_FRAME_BYTES}-byte bound`);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Splits a byte stream into decoded messages; throws a `data_corrupt` ClipError on a bad frame. */
export class FrameDecoder {
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  /** Feed bytes; returns every message they complete. */
  push(chunk: Buffer): unknown[] {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.#pendingBytes < 4) return out;
      const buf = this.#joined();
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME_BYTES) throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', `frame of ${len} bytes is over the ${MAX_FRAME_BYTES}-byte bound`);
      if (buf.length < 4 + len) return out;
      const body = buf.subarray(4, 4 + len).toString('utf8');
      const rest = buf.subarray(4 + len);
      this.#pending = rest.length > 0 ? [rest] : [];
      this.#pendingBytes = rest.length;
      try {
        out.push(JSON.parse(body));
      } catch (err) {
        throw dataCorrupt('CLIP_FUSE_SERVER_BAD_FRAME', 'frame is not JSON', err);
      }
    }
  }

  #joined(): Buffer {
    if (this.#pending.length > 1) this.#pending = [Buffer.concat(this.#pending)];
    return this.#pending[0]!;
  }
}
