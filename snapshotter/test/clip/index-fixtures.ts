import { crc32 } from 'node:zlib';
import { compressSync } from 'lz4-napi';

/**
 * An index file around `payload` with a valid header and checksums, whatever the payload says, so
 * a mutated or hostile payload reaches the decoder's structural checks instead of failing its
 * checksum. `declaredLen` is the payload length the header and the LZ4 block claim (default: the
 * true one).
 */
export function sealIndex(payload: Buffer, declaredLen = payload.length): Buffer {
  const compressed = compressSync(payload);
  compressed.writeUInt32LE(declaredLen, 0);
  const h = Buffer.alloc(32);
  h.write('CLIPIDX\0', 0, 'latin1');
  h.writeUInt16LE(1, 8);
  h.writeUInt32LE(declaredLen, 12);
  h.writeUInt32LE(compressed.length, 16);
  h.writeUInt32LE(crc32(payload), 20);
  h.writeUInt32LE(crc32(compressed), 24);
  return Buffer.concat([h, compressed]);
}
