/**
 * The stored formats: chunk values, the manifest that marks an object complete, and small blobs.
 * Every payload carries (or is described by) a CRC-32 of its uncompressed bytes so a flipped,
 * truncated or evicted-and-replaced value is detected on read instead of served.
 *
 * With a cluster key (`object-mac.ts`) the manifest records SHA-256s and carries an HMAC over its
 * key name and contents — v3: one per 256 KiB piece of each chunk, so a read hashes only the pieces
 * it covers; v2 (still read): one per chunk — and blobs carry an HMAC over their key name and bytes.
 * A CRC only catches accidents; the signed checks are what a writer of Redis cannot forge. A node
 * with a key reads only signed objects (v2, v3), a node without one only v1.
 */
import { crc32 } from 'node:zlib';
import { compress, uncompress } from '../util/lz4.js';
import { compressFramed, uncompressFramed, uncompressFramedSync } from '../util/lz4-into.js';
import { chunkDigest, MAC_BYTES, type ObjectMac } from './object-mac.js';

/** First byte of a chunk or blob value: how the payload is encoded. */
const RAW = 0;
const LZ4 = 1;
const BLOB_VERSION = 1;
const SIGNED_BLOB_VERSION = 2;
const BLOB_HEADER = 9;

/** The record written last: an object is complete exactly when its manifest exists. */
export interface Manifest {
  readonly v: 1 | 2 | 3;
  readonly size: number;
  readonly chunkSizeBytes: number;
  readonly chunks: number;
  /** v1: CRC-32 of each chunk's uncompressed bytes. */
  readonly crc32?: readonly number[];
  /**
   * v2: SHA-256 (hex) of each chunk's uncompressed bytes; v3: of each piece (`pieceBytes` of a
   * chunk, chunk by chunk; see `pieceIndex`). Covered by `mac`.
   */
  readonly sha256?: readonly string[];
  /** v3: bytes of a piece, the unit a read checks: a read hashes only the pieces it covers. */
  readonly pieceBytes?: number;
  /** v2, v3: HMAC (hex) over the key name and the fields above. */
  readonly mac?: string;
}

/** The piece size this node signs (v3): a 4 KiB read of a 4 MiB chunk hashes 256 KiB, not 4 MiB. */
export const PIECE_BYTES = 256 << 10;

/** The signed digests of one chunk's pieces; every piece must be checked before its bytes are served. */
export interface ChunkPieces {
  readonly pieceBytes: number;
  readonly sha256: readonly string[];
}

/**
 * What a chunk must match: its manifest's CRC (v1) or SHA-256 (v2), both checked as it is decoded;
 * or (v3) its pieces' SHA-256s, of which decoding checks only the count — `checkPieces` must pass for
 * the pieces a read covers before their bytes are served.
 */
export type ChunkCheck = { crc32: number } | { sha256: string } | { pieces: ChunkPieces };

/** What decoding a stored value found. */
export type Decoded = { type: 'ok'; data: Buffer } | { type: 'corrupt'; reason: string };

/**
 * Compress one chunk (raw when LZ4 does not make it smaller, e.g. already-compressed files). Chunks
 * go through `lz4-into.ts` (buffers this side owns), not lz4-napi, whose allocator kept hundreds of
 * MB of freed chunks resident; the stored format is the same.
 */
export async function encodeChunk(data: Buffer): Promise<Buffer> {
  const packed = await compressFramed(data, 1);
  if (packed === undefined) return Buffer.concat([Buffer.of(RAW), data]);
  packed[0] = LZ4;
  return packed;
}

/** Decode a chunk value and check it against the manifest's length and CRC or digest. */
export async function decodeChunk(value: Buffer, expectedLength: number, expected: ChunkCheck): Promise<Decoded> {
  const body = chunkBody(value, expectedLength);
  if (body.type !== 'lz4') return body.type === 'raw' ? checkChunk(body.data, expectedLength, expected) : body;
  try {
    return checkChunk(await uncompressFramed(body.block, expectedLength), expectedLength, expected);
  } catch (err) {
    return { type: 'corrupt', reason: `lz4: ${(err as Error).message}` };
  }
}

/**
 * `decodeChunk` without leaving the calling thread (LZ4 inflated inline): for a worker thread, where
 * the SHA-256 of a signed chunk is computed off the event loop (`chunk-check-off-thread.ts`).
 */
export function decodeChunkSync(value: Buffer, expectedLength: number, expected: ChunkCheck): Decoded {
  const body = chunkBody(value, expectedLength);
  if (body.type !== 'lz4') return body.type === 'raw' ? checkChunk(body.data, expectedLength, expected) : body;
  try {
    return checkChunk(uncompressFramedSync(body.block, expectedLength), expectedLength, expected);
  } catch (err) {
    return { type: 'corrupt', reason: `lz4: ${(err as Error).message}` };
  }
}

/** A chunk value's payload: raw bytes, or an LZ4 block whose declared size may be inflated. */
function chunkBody(value: Buffer, expectedLength: number): { type: 'raw'; data: Buffer } | { type: 'lz4'; block: Buffer } | { type: 'corrupt'; reason: string } {
  if (value[0] === RAW) return { type: 'raw', data: value.subarray(1) };
  if (value[0] !== LZ4) return { type: 'corrupt', reason: `unknown chunk encoding ${String(value[0])}` };
  const refused = refuseLz4Size(value.subarray(1), expectedLength);
  return refused ? { type: 'corrupt', reason: refused } : { type: 'lz4', block: value.subarray(1) };
}

function checkChunk(data: Buffer, expectedLength: number, expected: ChunkCheck): Decoded {
  if (data.length !== expectedLength) return { type: 'corrupt', reason: `length ${data.length}, expected ${expectedLength}` };
  if ('pieces' in expected) {
    const n = Math.ceil(data.length / expected.pieces.pieceBytes);
    return n === expected.pieces.sha256.length ? { type: 'ok', data } : { type: 'corrupt', reason: `${n} pieces, manifest has ${expected.pieces.sha256.length}` };
  }
  if ('sha256' in expected) {
    const digest = chunkDigest(data);
    if (digest !== expected.sha256) return { type: 'corrupt', reason: `sha256 ${digest}, expected ${expected.sha256}` };
    return { type: 'ok', data };
  }
  const crc = crc32(data);
  if (crc !== expected.crc32) return { type: 'corrupt', reason: `crc32 ${crc}, expected ${expected.crc32}` };
  return { type: 'ok', data };
}

/** The check of chunk `i` under manifest `m` (-1 never matches a CRC). */
export function chunkCheck(m: Manifest, i: number): ChunkCheck {
  if (m.v === 3) {
    const pieceBytes = m.pieceBytes as number;
    const first = pieceIndex(m.chunkSizeBytes, pieceBytes, i, 0);
    const length = Math.min(m.chunkSizeBytes, m.size - i * m.chunkSizeBytes);
    return { pieces: { pieceBytes, sha256: (m.sha256 ?? []).slice(first, first + Math.ceil(length / pieceBytes)) } };
  }
  return m.v === 2 ? { sha256: m.sha256?.[i] ?? '' } : { crc32: m.crc32?.[i] ?? -1 };
}

/** Index in a v3 manifest's `sha256` of piece `j` of chunk `i` (pieces tile each chunk from its start). */
export function pieceIndex(chunkSizeBytes: number, pieceBytes: number, i: number, j: number): number {
  return i * Math.ceil(chunkSizeBytes / pieceBytes) + j;
}

/** SHA-256s of `data`'s pieces, as a v3 manifest records a chunk. */
export function pieceDigests(data: Buffer, pieceBytes: number): string[] {
  const out: string[] = [];
  for (let at = 0; at < data.length; at += pieceBytes) out.push(chunkDigest(data.subarray(at, at + pieceBytes)));
  return out;
}

/**
 * Check the pieces of a decoded v3 chunk that cover bytes [from, to) of it, skipping those marked in
 * `checked` and marking those that pass. Undefined when all pass, else why not.
 */
export function checkPieces(data: Buffer, pieces: ChunkPieces, from: number, to: number, checked: Uint8Array): string | undefined {
  const last = Math.min(pieces.sha256.length, Math.ceil(to / pieces.pieceBytes));
  for (let j = Math.floor(from / pieces.pieceBytes); j < last; j++) {
    if (checked[j] === 1) continue;
    const digest = chunkDigest(data.subarray(j * pieces.pieceBytes, (j + 1) * pieces.pieceBytes));
    if (digest !== pieces.sha256[j]) return `piece ${j}: sha256 ${digest}, expected ${pieces.sha256[j]}`;
    checked[j] = 1;
  }
  return undefined;
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

/**
 * A signed manifest of object `name`: v3 (a digest per piece of `pieceBytes`) when `pieceBytes` is
 * given, else v2 (a digest per chunk; what earlier nodes wrote, still read).
 */
export function signedManifest(mac: ObjectMac, name: string, size: number, chunkSizeBytes: number, sha256: readonly string[], pieceBytes?: number): Manifest {
  const chunks = Math.ceil(size / chunkSizeBytes);
  if (pieceBytes === undefined) {
    const tag = mac.sign(`manifest:${name}`, manifestBody(2, size, chunkSizeBytes, sha256));
    return { v: 2, size, chunkSizeBytes, chunks, sha256, mac: tag.toString('hex') };
  }
  const tag = mac.sign(`manifest:${name}`, manifestBody(3, size, chunkSizeBytes, sha256, pieceBytes));
  return { v: 3, size, chunkSizeBytes, chunks, sha256, pieceBytes, mac: tag.toString('hex') };
}

const manifestBody = (v: 2 | 3, size: number, chunkSizeBytes: number, sha256: readonly string[], pieceBytes?: number): Buffer =>
  Buffer.from(JSON.stringify(v === 2 ? [2, size, chunkSizeBytes, sha256] : [3, size, chunkSizeBytes, pieceBytes, sha256]));

/** How many piece digests a v3 manifest of `size` bytes in chunks of `chunkSizeBytes` holds. */
function pieceCount(size: number, chunkSizeBytes: number, pieceBytes: number): number {
  const chunks = Math.ceil(size / chunkSizeBytes);
  if (chunks === 0) return 0;
  const last = size - (chunks - 1) * chunkSizeBytes;
  return pieceIndex(chunkSizeBytes, pieceBytes, chunks - 1, 0) + Math.ceil(last / pieceBytes);
}

/** Why a manifest is refused, or the manifest. */
export type DecodedManifest = { type: 'ok'; manifest: Manifest } | { type: 'malformed' } | { type: 'unverified'; reason: string };

/**
 * Parse and check a manifest of object `name`: v1 when `mac` is undefined, else a v2 or v3 whose
 * tag verifies (a v1, a bad tag or one made for another name is `unverified`).
 */
export function decodeManifest(text: string, name: string, mac?: ObjectMac): DecodedManifest {
  let m: Partial<Manifest>;
  try {
    m = JSON.parse(text) as Partial<Manifest>;
  } catch {
    return { type: 'malformed' };
  }
  if (typeof m !== 'object' || m === null) return { type: 'malformed' };
  const ints = [m.size, m.chunkSizeBytes, m.chunks].every((n) => Number.isSafeInteger(n) && (n as number) >= 0);
  if (!ints || (m.chunkSizeBytes as number) <= 0 || m.chunks !== Math.ceil((m.size as number) / (m.chunkSizeBytes as number))) return { type: 'malformed' };
  if (!mac) {
    if (m.v !== 1 || !Array.isArray(m.crc32) || m.crc32.length !== m.chunks) return { type: 'malformed' };
    return { type: 'ok', manifest: m as Manifest };
  }
  if (m.v !== 2 && m.v !== 3) return { type: 'unverified', reason: `manifest v${String(m.v)} carries no tag` };
  const size = m.size as number;
  const chunkSizeBytes = m.chunkSizeBytes as number;
  const pieceBytes = m.v === 3 ? m.pieceBytes : undefined;
  if (m.v === 3 && !(Number.isSafeInteger(pieceBytes) && (pieceBytes as number) >= 4096 && (pieceBytes as number) <= chunkSizeBytes)) return { type: 'malformed' };
  const digests = m.v === 3 ? pieceCount(size, chunkSizeBytes, pieceBytes as number) : m.chunks;
  const sha = m.sha256;
  if (!Array.isArray(sha) || sha.length !== digests || !sha.every((d) => typeof d === 'string' && /^[0-9a-f]{64}$/.test(d))) return { type: 'malformed' };
  const tag = typeof m.mac === 'string' && /^[0-9a-f]{64}$/.test(m.mac) ? Buffer.from(m.mac, 'hex') : Buffer.alloc(0);
  if (!mac.verify(tag, `manifest:${name}`, manifestBody(m.v, size, chunkSizeBytes, sha, pieceBytes))) {
    return { type: 'unverified', reason: 'manifest tag does not verify' };
  }
  const manifest: Manifest = { v: m.v, size, chunkSizeBytes, chunks: m.chunks as number, sha256: sha, ...(pieceBytes !== undefined ? { pieceBytes } : {}), mac: m.mac as string };
  return { type: 'ok', manifest };
}

/**
 * A blob value: v1 [1][crc32 u32][raw length u32][lz4 block]; with a key (blob `name`),
 * v2 [2][hmac 32 bytes][crc32 u32][raw length u32][lz4 block].
 */
export async function encodeBlob(data: Buffer, signed?: { mac: ObjectMac; name: string }): Promise<Buffer> {
  const header = Buffer.alloc(BLOB_HEADER);
  header.writeUInt8(signed ? SIGNED_BLOB_VERSION : BLOB_VERSION, 0);
  header.writeUInt32BE(crc32(data), 1);
  header.writeUInt32BE(data.length, 5);
  const tag = signed ? [signed.mac.sign(`blob:${signed.name}`, data)] : [];
  return Buffer.concat([header.subarray(0, 1), ...tag, header.subarray(1), await compress(data)]);
}

/** What decoding a blob found; `unverified` = well-formed but its tag (or lack of one) is refused. */
export type DecodedBlob = Decoded | { type: 'unverified'; reason: string };

/** Decode and verify a blob value (v1 without `signed`, else a v2 whose tag verifies for `name`). */
export async function decodeBlob(value: Buffer, signed?: { mac: ObjectMac; name: string }): Promise<DecodedBlob> {
  if (!signed) return decodeBlobBody(value, BLOB_VERSION);
  if (value[0] !== SIGNED_BLOB_VERSION) return { type: 'unverified', reason: `blob v${String(value[0])} carries no tag` };
  if (value.length < 1 + MAC_BYTES + BLOB_HEADER) return { type: 'corrupt', reason: 'bad blob header' };
  const tag = value.subarray(1, 1 + MAC_BYTES);
  const d = await decodeBlobBody(Buffer.concat([value.subarray(0, 1), value.subarray(1 + MAC_BYTES)]), SIGNED_BLOB_VERSION);
  if (d.type !== 'ok') return d;
  if (!signed.mac.verify(tag, `blob:${signed.name}`, d.data)) return { type: 'unverified', reason: 'blob tag does not verify' };
  return d;
}

async function decodeBlobBody(value: Buffer, version: number): Promise<Decoded> {
  if (value.length < BLOB_HEADER || value[0] !== version) return { type: 'corrupt', reason: 'bad blob header' };
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
