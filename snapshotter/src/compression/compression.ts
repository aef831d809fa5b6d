/**
 * Which codec a layer blob uses, told from its first bytes rather than from a media type that
 * mirrors and converters get wrong.
 */

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
