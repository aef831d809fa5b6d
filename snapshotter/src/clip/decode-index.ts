/**
 * Decoding of the clip index binary format: header and checksum checks, one LZ4 inflate, section
 * bounds, then a single validation pass over every row so the reader never reads out of bounds.
 */
import { crc32 } from 'node:zlib';
import { uncompressSync } from '../util/lz4.js';
import { dataCorrupt, invalidArgument } from '../errors/index.js';
import { ClipIndexReader, type IndexLayout } from './index-reader.js';
import {
  COMPRESSION_CODES, HEADER_BYTES, MAGIC, MAX_PAYLOAD_BYTES, META, ROW, SECTION, SECTION_ROW_BYTES, VERSION,
  XATTR_ROW, corrupt, readU64,
} from './index-format.js';
import { DEFAULT_CLIP_LIMITS, type ClipLimits } from './limits.js';
import { validateRows } from './validate-rows.js';
import type { LayerMeta } from './types.js';

type Range = { off: number; len: number };

/**
 * Decode and validate an encoded index; throws data_corrupt for anything malformed and
 * invalid_argument (`CLIP_INDEX_TOO_LARGE`) for one over `limits` — checked before anything of
 * the declared size is allocated.
 */
export function decodeIndex(buf: Buffer, limits: IndexLimits = {}): ClipIndexReader {
  return new ClipIndexReader(checkIndex(buf, limits).layout);
}

type IndexLimits = Partial<Pick<ClipLimits, 'maxEntries' | 'maxIndexBytes'>>;

/** Every check `decodeIndex` makes, returning the inflated payload and its layout (a worker's half). */
export function checkIndex(buf: Buffer, limits: IndexLimits = {}): { payload: Buffer; layout: IndexLayout } {
  const maxIndexBytes = Math.min(limits.maxIndexBytes ?? DEFAULT_CLIP_LIMITS.maxIndexBytes, MAX_PAYLOAD_BYTES);
  const payload = inflate(buf, maxIndexBytes);
  const layout = layoutOf(payload, limits);
  validateRows(layout);
  return { payload, layout };
}

/**
 * The reader of a payload `checkIndex` accepted (in a worker thread, which handed it over): its
 * sections are located again, which is cheap; its rows are not checked twice.
 */
export function readerOfCheckedPayload(payload: Buffer, limits: IndexLimits = {}): ClipIndexReader {
  return new ClipIndexReader(layoutOf(payload, limits));
}

function layoutOf(payload: Buffer, limits: IndexLimits): IndexLayout {
  const maxEntries = limits.maxEntries ?? DEFAULT_CLIP_LIMITS.maxEntries;
  const sections = readSections(payload);
  const need = (id: number, name: string): Range => {
    const r = sections.get(id);
    if (r === undefined) throw corrupt(`missing ${name} section`);
    return r;
  };
  const metaR = need(SECTION.meta, 'meta');
  const strings = need(SECTION.strings, 'strings');
  const entries = need(SECTION.entries, 'entries');
  const xattrs = need(SECTION.xattrs, 'xattrs');
  if (metaR.len < META.bytes) throw corrupt('meta section too short');
  if (xattrs.len % XATTR_ROW.bytes !== 0) throw corrupt('xattr section has a partial row');
  const meta = readMeta(payload, metaR.off, strings);
  if (meta.entryCount > maxEntries) throw tooLarge(`${meta.entryCount} entries (limit ${maxEntries})`);
  if (entries.len !== meta.entryCount * ROW.bytes || meta.entryCount === 0) throw corrupt('entry count does not match the entry section');
  return {
    payload, meta, stringsOff: strings.off, stringsLen: strings.len, entriesOff: entries.off,
    xattrsOff: xattrs.off, xattrCount: xattrs.len / XATTR_ROW.bytes,
    gzipCheckpoints: optionalSection(payload, sections.get(SECTION.gzipCheckpoints)),
    zstdFrames: optionalSection(payload, sections.get(SECTION.zstdFrames)),
  };
}

/** An optional opaque section (zran's tables), copied so it does not pin the payload's layout assumptions. */
function optionalSection(payload: Buffer, r: Range | undefined): Buffer | undefined {
  return r === undefined || r.len === 0 ? undefined : Buffer.from(payload.subarray(r.off, r.off + r.len));
}

function tooLarge(detail: string): Error {
  return invalidArgument('CLIP_INDEX_TOO_LARGE', `clip index: ${detail}`);
}

function inflate(buf: Buffer, maxIndexBytes: number): Buffer {
  if (buf.length < HEADER_BYTES) throw corrupt('shorter than its header');
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) throw corrupt('bad magic');
  const version = buf.readUInt16LE(8);
  if (version !== VERSION) throw dataCorrupt('CLIP_INDEX_VERSION', `clip index version ${version} is not supported (want ${VERSION})`);
  if (buf.readUInt16LE(10) !== 0 || buf.readUInt32LE(28) !== 0) throw corrupt('unknown header flags');
  const payloadLen = buf.readUInt32LE(12);
  const compressedLen = buf.readUInt32LE(16);
  if (compressedLen !== buf.length - HEADER_BYTES) throw corrupt('compressed length does not match');
  const compressed = buf.subarray(HEADER_BYTES);
  if (crc32(compressed) !== buf.readUInt32LE(24)) throw corrupt('checksum mismatch (compressed)');
  // lz4-napi prefixes its block with the inflated size; it must agree before we let it allocate.
  if (compressed.length < 4 || compressed.readUInt32LE(0) !== payloadLen) throw corrupt('LZ4 size prefix does not match');
  // An LZ4 block expands at most ~255:1; a larger declared size is a lie told to make us allocate.
  if (payloadLen > (compressed.length - 4) * 255 + 64) throw corrupt('LZ4 size prefix larger than its block can inflate to');
  if (payloadLen > maxIndexBytes) throw tooLarge(`payload of ${payloadLen} bytes (limit ${maxIndexBytes})`);
  let payload: Buffer;
  try {
    payload = uncompressSync(compressed);
  } catch (err) {
    throw dataCorrupt('CLIP_INDEX_CORRUPT', 'clip index: LZ4 block does not decompress', err);
  }
  if (payload.length !== payloadLen) throw corrupt('payload length mismatch');
  if (crc32(payload) !== buf.readUInt32LE(20)) throw corrupt('checksum mismatch (payload)');
  return payload;
}

function readSections(p: Buffer): Map<number, Range> {
  if (p.length < 4) throw corrupt('payload too short');
  const count = p.readUInt32LE(0);
  if (count > 1024 || 4 + count * SECTION_ROW_BYTES > p.length) throw corrupt('section table out of range');
  const out = new Map<number, Range>();
  for (let i = 0; i < count; i++) {
    const at = 4 + i * SECTION_ROW_BYTES;
    const id = p.readUInt32LE(at);
    const off = p.readUInt32LE(at + 4);
    const len = p.readUInt32LE(at + 8);
    if (off + len > p.length || off < 4 + count * SECTION_ROW_BYTES) throw corrupt(`section ${id} out of range`);
    if (out.has(id)) throw corrupt(`section ${id} repeated`);
    out.set(id, { off, len });
  }
  return out;
}

function readMeta(p: Buffer, at: number, strings: Range): LayerMeta {
  const compression = COMPRESSION_CODES[p.readUInt8(at + META.compression)];
  if (compression === undefined) throw corrupt('unknown compression');
  if (p.readUInt32LE(at + META.sizeHi) >= 1 << 21) throw corrupt('uncompressed size out of range');
  const str = (offAt: number, lenAt: number): string => {
    const off = p.readUInt32LE(at + offAt);
    const len = p.readUInt32LE(at + lenAt);
    if (off + len > strings.len) throw corrupt('meta string out of range');
    return p.toString('utf8', strings.off + off, strings.off + off + len);
  };
  return {
    diffId: str(META.diffIdOff, META.diffIdLen),
    compressedDigest: str(META.digestOff, META.digestLen),
    compression,
    uncompressedSize: readU64(p, at + META.sizeLo, at + META.sizeHi),
    entryCount: p.readUInt32LE(at + META.entryCount),
  };
}

