/**
 * Decoding of one 512-byte tar header block: ustar and GNU layouts, octal and base-256 numbers,
 * checksum verification. Extension records (PAX, GNU long names) are applied by the parser.
 */
import { dataCorrupt, invalidArgument } from '../errors/index.js';

export const BLOCK = 512;

/** The raw fields of one header block. Names are still un-normalized. */
export interface RawHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
}

/** True when the block is all zeroes (end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Decode a NUL-terminated string field. */
function str(block: Buffer, start: number, len: number): string {
  let end = start;
  const max = start + len;
  while (end < max && block[end] !== 0) end++;
  return block.toString('utf8', start, end);
}

/** Decode a numeric field: octal text, or GNU base-256 when the high bit of the first byte is set. */
export function parseNumeric(block: Buffer, start: number, len: number, field: string, at: number): number {
  const first = block[start] ?? 0;
  if (first & 0x80) return parseBase256(block, start, len, field, at);
  let i = start;
  const end = start + len;
  while (i < end && (block[i] === 0x20 || block[i] === 0)) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw badHeader(`${field} is not an octal number`, at);
    value = value * 8 + (c - 0x30);
    digits++;
  }
  if (digits === 0) return 0;
  return value;
}

function parseBase256(block: Buffer, start: number, len: number, field: string, at: number): number {
  const first = block[start] ?? 0;
  let value = BigInt(first & 0x7f);
  for (let i = 1; i < len; i++) value = (value << 8n) | BigInt(block[start + i] ?? 0);
  // Bit 0x40 of the first byte is the sign of a two's complement number over the remaining bits.
  if (first & 0x40) value -= 1n << BigInt(len * 8 - 1);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) {
    throw invalidArgument('CLIP_TAR_NUMBER_RANGE', `tar header at offset ${at}: ${field} out of range`);
  }
  return Number(value);
}

function badHeader(detail: string, at: number): Error {
  return dataCorrupt('CLIP_TAR_BAD_HEADER', `tar header at offset ${at}: ${detail}`);
}

/** Verify the header checksum (unsigned, or the signed variant some old tars wrote). */
function verifyChecksum(block: Buffer, at: number): void {
  const stored = parseNumeric(block, 148, 8, 'checksum', at);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) throw badHeader('checksum mismatch', at);
}

/** Decode a header block at stream offset `at`; throws data_corrupt on a bad checksum. */
export function parseHeader(block: Buffer, at: number): RawHeader {
  verifyChecksum(block, at);
  const magic = block.toString('latin1', 257, 263);
  const isUstar = magic === 'ustar\0';
  const isGnu = magic === 'ustar ';
  let name = str(block, 0, 100);
  if (isUstar) {
    const prefix = str(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const hasOwnerNames = isUstar || isGnu;
  const hasDevices = isUstar || isGnu;
  return {
    name,
    mode: parseNumeric(block, 100, 8, 'mode', at),
    uid: parseNumeric(block, 108, 8, 'uid', at),
    gid: parseNumeric(block, 116, 8, 'gid', at),
    size: parseNumeric(block, 124, 12, 'size', at),
    mtime: parseNumeric(block, 136, 12, 'mtime', at),
    typeflag: String.fromCharCode(block[156] ?? 0),
    linkname: str(block, 157, 100),
    uname: hasOwnerNames ? str(block, 265, 32) : '',
    gname: hasOwnerNames ? str(block, 297, 32) : '',
    devMajor: hasDevices ? parseNumeric(block, 329, 8, 'devmajor', at) : 0,
    devMinor: hasDevices ? parseNumeric(block, 337, 8, 'devminor', at) : 0,
  };
}
