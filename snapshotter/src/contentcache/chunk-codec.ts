/**
 * The stored formats: chunk values, the manifest that marks an object complete, and small blobs.
 * Every payload carries (or is described by) a CRC-32 of its uncompressed bytes so a flipped,
 * truncated or evicted-and-replaced value is detected on read instead of served.
 */
import { crc32 } from 'node:zlib';
import { compress, uncompress } from 'lz4-napi';

/** First byte of a chunk or blob value: how the payload is encoded. */
const RAW = 0;
const LZ4 = 1;
const BLOB_VERSION = 1;
const BLOB_HEADER = 9;

/** The record written last: an object is complete exactly when its manifest exists. */
export interface Manifest {
  readonly v: 1;
  readonly size: number;
  readonly chunkSizeBytes: number;
  readonly chunks: number;
  /** CRC-32 of each chunk's uncompressed bytes. */
  readonly crc32: readonly number[];
}

/** What decoding a stored value found. */
export type Decoded = { type: 'ok'; data: Buffer } | { type: 'corrupt'; reason: string };

/** Compress one chunk (raw when LZ4 does not make it smaller, e.g. already-compressed files). */
export async function encodeChunk(data: Buffer): Promise<Buffer> {
  const packed = await compress(data);
  if (packed.length >= data.length) return Buffer.concat([Buffer.of(RAW), data]);
  return Buffer.concat([Buffer.of(LZ4), packed]);
}

/** Decode a chunk value and check it against the manifest's length and CRC. */
export async function decodeChunk(value: Buffer, expectedLength: number, expectedCrc: number): Promise<Decoded> {
  let data: Buffer;
  try {
    if (value[0] === RAW) data = value.subarray(1);
    else if (value[0] === LZ4) {
      const refused = refuseLz4Size(value.subarray(1), expectedLength);
      if (refused) return { type: 'corrupt', reason: refused };
      data = await uncompress(value.subarray(1));
    } else return { type: 'corrupt', reason: `unknown chunk encoding ${String(value[0])}` };
  } catch (err) {
    return { type: 'corrupt', reason: `lz4: ${(err as Error).message}` };
  }
  if (data.length !== expectedLength) return { type: 'corrupt', reason: `length ${data.length}, expected ${expectedLength}` };
  const crc = crc32(data);
  if (crc !== expectedCrc) return { type: 'corrupt', reason: `crc32 ${crc}, expected ${expectedCrc}` };
  return { type: 'ok', data };
}

/**
 * Why an lz4-napi block must not be inflated, or undefined when it may: it would allocate the size
 * its prefix declares (up to 4 GiB) before anything else is checked, and values come from Redis.
 * The prefix must be the expected length, and no more than the block can inflate to (~255:1).
 */
function refuseLz4Size(block: Buffer, expectedLength: number): string | undefined {
  if (block.length < 4) return 'lz4: block shorter than its size prefix';
  const declared = block.readUInt32LE(0);
  if (declared !== expectedLength) return `lz4: declares ${declared} bytes, expected ${expectedLength}`;
  if (declared > (block.length - 4) * 255 + 64) return `lz4: declares ${declared} bytes, more than ${block.length} bytes can inflate to`;
  return undefined;
}

/** Chunk checksum, as recorded in the manifest. */
export function chunkCrc(data: Buffer): number {
  return crc32(data);
}

/** Serialise a manifest. */
export function encodeManifest(m: Manifest): string {
  return JSON.stringify(m);
}

/** Parse and sanity-check a manifest; `undefined` for anything malformed. */
export function decodeManifest(text: string): Manifest | undefined {
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(text) as Partial<Manifest>;
  } catch {
    return undefined;
  }
  const ints = [m.size, m.chunkSizeBytes, m.chunks].every((n) => Number.isSafeInteger(n) && (n as number) >= 0);
  if (m.v !== 1 || !ints || !Array.isArray(m.crc32) || m.crc32.length !== m.chunks) return undefined;
  if ((m.chunkSizeBytes as number) <= 0 || m.chunks !== Math.ceil((m.size as number) / (m.chunkSizeBytes as number))) return undefined;
  return m as Manifest;
}

/** A blob value: [version u8][crc32 u32][raw length u32][lz4 block]. */
export async function encodeBlob(data: Buffer): Promise<Buffer> {
  const header = Buffer.alloc(BLOB_HEADER);
  header.writeUInt8(BLOB_VERSION, 0);
  header.writeUInt32BE(crc32(data), 1);
  header.writeUInt32BE(data.length, 5);
  return Buffer.concat([header, await compress(data)]);
}

/** Decode and verify a blob value. */
export async function decodeBlob(value: Buffer): Promise<Decoded> {
  if (value.length < BLOB_HEADER || value[0] !== BLOB_VERSION) return { type: 'corrupt', reason: 'bad blob header' };
  const crc = value.readUInt32BE(1);
  const length = value.readUInt32BE(5);
  const refused = refuseLz4Size(value.subarray(BLOB_HEADER), length);
  if (refused) return { type: 'corrupt', reason: refused };
  let data: Buffer;
  try {
    data = await uncompress(value.subarray(BLOB_HEADER));
  } catch (err) {
    return { type: 'corrupt', reason: `lz4: ${(err as Error).message}` };
  }
  if (data.length !== length || crc32(data) !== crc) return { type: 'corrupt', reason: 'blob checksum mismatch' };
  return { type: 'ok', data };
}
