/** Little-endian 64-bit offsets in the random-access tables, kept to the range a JS number holds exactly. */
import { dataCorrupt } from '../errors/index.js';

/** Write a non-negative safe integer as u64 LE. */
export function writeU64(buf: Buffer, at: number, value: number): void {
  buf.writeUInt32LE(value % 0x1_0000_0000, at);
  buf.writeUInt32LE(Math.floor(value / 0x1_0000_0000), at + 4);
}

/** Read a u64 LE offset of table `what`; above 2^53 it is `CLIP_ZRAN_TABLE_CORRUPT`. */
export function readU64(buf: Buffer, at: number, what: string): number {
  const hi = buf.readUInt32LE(at + 4);
  if (hi >= 1 << 21) throw tableCorrupt(what, 'offset out of range');
  return hi * 0x1_0000_0000 + buf.readUInt32LE(at);
}

/** The one error of a malformed table. */
export const tableCorrupt = (what: string, detail: string) => dataCorrupt('CLIP_ZRAN_TABLE_CORRUPT', `${what}: ${detail}`);
