/**
 * LZ4 blocks in lz4-napi's framing ([u32 LE uncompressed length][block], what ContentCache chunk
 * values have always held) compressed and inflated into buffers this side allocates, by the
 * `clip_lz4` addon on the thread pool. lz4-napi's async API hands back buffers from its own
 * allocator, allocated on a pool thread and freed later on this one; after a multi-GB layer's
 * 4 MiB chunks its arena held 230–580 MB resident (issue 15, README "Memory"). Here every byte
 * is an ordinary Buffer that V8 accounts for and frees.
 */
import { dataCorrupt, internal } from '../errors/index.js';
import { loadNativeAddon } from './native-addon.js';

interface Lz4Native {
  readonly lz4Version: string;
  compressBound(bytes: number): number;
  compressInto(source: Uint8Array, destination: Uint8Array): Promise<number>;
  uncompressInto(block: Uint8Array, destination: Uint8Array): Promise<number>;
  uncompressIntoSync(block: Uint8Array, destination: Uint8Array): number;
  fixMmapThreshold(bytes: number): boolean;
}

/** Bytes of the uncompressed-length prefix. */
const PREFIX = 4;

/** Allocations of at least this many bytes are mapped on their own and unmapped when freed. */
export const MMAP_THRESHOLD_BYTES = 1 << 20;

let cached: Lz4Native | undefined;

function native(): Lz4Native {
  if (cached === undefined) {
    const n = loadNativeAddon<Lz4Native>('clip_lz4', 'CLIP_LZ4_ADDON', import.meta.url);
    if (n === undefined) throw internal('CLIP_LZ4_ADDON_MISSING', 'the clip_lz4 addon is not built (make deps)');
    // Freed chunk buffers must leave the process: glibc's adaptive threshold would serve 4 MiB
    // buffers from its heap after the first one is freed, and keep ~100 MB of them resident.
    n.fixMmapThreshold(MMAP_THRESHOLD_BYTES);
    cached = n;
  }
  return cached;
}

/** The liblz4 version the addon runs on (diagnostics). */
export function lz4IntoVersion(): string {
  return native().lz4Version;
}

/**
 * `data` compressed after `headerBytes` bytes left for the caller: [header][u32 LE length][block].
 * Undefined when the block would not be smaller than `data` (store it raw).
 */
export async function compressFramed(data: Buffer, headerBytes: number): Promise<Buffer | undefined> {
  const n = native();
  // Room for a frame smaller than `data` only: a block that does not fit is one not worth keeping.
  const room = Math.min(n.compressBound(data.length), data.length - PREFIX - 1);
  if (room <= 0) return undefined;
  const out = Buffer.allocUnsafeSlow(headerBytes + PREFIX + room);
  let written: number;
  try {
    written = await n.compressInto(data, out.subarray(headerBytes + PREFIX));
  } catch (err) {
    if ((err as { code?: string }).code === 'CLIP_LZ4_DESTINATION') return undefined;
    throw err;
  }
  out.writeUInt32LE(data.length, headerBytes);
  return out.subarray(0, headerBytes + PREFIX + written);
}

/**
 * Inflate a framed block into a new buffer of `length` bytes, which its prefix must declare and the
 * block must fill exactly. A corrupt or short block is a CLIP_LZ4_CORRUPT ClipError.
 */
export async function uncompressFramed(framed: Buffer, length: number): Promise<Buffer> {
  const out = Buffer.allocUnsafeSlow(length);
  let got: number;
  try {
    got = await native().uncompressInto(block(framed, length), out);
  } catch (err) {
    throw typed(err);
  }
  return exact(out, got, length);
}

/** `uncompressFramed` on the calling thread (a worker's). */
export function uncompressFramedSync(framed: Buffer, length: number): Buffer {
  const out = Buffer.allocUnsafeSlow(length);
  let got: number;
  try {
    got = native().uncompressIntoSync(block(framed, length), out);
  } catch (err) {
    throw typed(err);
  }
  return exact(out, got, length);
}

function block(framed: Buffer, length: number): Buffer {
  if (framed.length < PREFIX || framed.readUInt32LE(0) !== length) throw corrupt(`declares ${framed.length < PREFIX ? 'no' : framed.readUInt32LE(0)} bytes, expected ${length}`);
  return framed.subarray(PREFIX);
}

function exact(out: Buffer, got: number, length: number): Buffer {
  if (got !== length) throw corrupt(`inflated to ${got} bytes, expected ${length}`);
  return out;
}

const corrupt = (why: string): Error => dataCorrupt('CLIP_LZ4_CORRUPT', `lz4: ${why}`);

/** The addon's error (a corrupt block; its `code` is CLIP_LZ4_CORRUPT) as a ClipError. */
function typed(err: unknown): Error {
  return (err as { code?: string }).code === 'CLIP_LZ4_CORRUPT' ? corrupt('corrupt block, or it does not inflate to its declared length') : (err as Error);
}
