/** Serialization of a built index into the versioned, LZ4-compressed binary format. */
import { crc32 } from 'node:zlib';
import { compressSync } from '../util/lz4.js';
import { invalidArgument } from '../errors/index.js';
import {
  COMPRESSION_CODES, FLAG_OPAQUE, HEADER_BYTES, MAGIC, META, ROW, SECTION, SECTION_ROW_BYTES, TYPE_CODES,
  VERSION, XATTR_ROW, codeOf, writeU64,
} from './index-format.js';
import { parentOf } from './paths.js';
import { StringTable } from './string-table.js';
import type { BuiltEntry, ClipIndex } from './types.js';

/** Encode an index (entries sorted as `buildIndex` returns them) into its binary form. */
export function encodeIndex(idx: ClipIndex): Buffer {
  const strings = new StringTable();
  const meta = encodeMeta(idx, strings);
  const { entries, xattrs } = encodeEntries(idx.entries, strings);
  const payload = assemble([
    [SECTION.meta, meta],
    [SECTION.strings, strings.toBuffer()],
    [SECTION.entries, entries],
    [SECTION.xattrs, xattrs],
    ...(idx.gzipCheckpoints && idx.gzipCheckpoints.length > 0 ? [[SECTION.gzipCheckpoints, idx.gzipCheckpoints] as [number, Buffer]] : []),
    ...(idx.zstdFrames && idx.zstdFrames.length > 0 ? [[SECTION.zstdFrames, idx.zstdFrames] as [number, Buffer]] : []),
  ]);
  const compressed = compressSync(payload);
  const header = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeUInt16LE(VERSION, 8);
  header.writeUInt32LE(payload.length, 12);
  header.writeUInt32LE(compressed.length, 16);
  header.writeUInt32LE(crc32(payload), 20);
  header.writeUInt32LE(crc32(compressed), 24);
  return Buffer.concat([header, compressed]);
}

function encodeMeta(idx: ClipIndex, strings: StringTable): Buffer {
  const m = Buffer.alloc(META.bytes);
  m.writeUInt8(codeOf(COMPRESSION_CODES, idx.meta.compression), META.compression);
  m.writeUInt32LE(idx.entries.length, META.entryCount);
  writeU64(m, idx.meta.uncompressedSize, META.sizeLo, META.sizeHi);
  const [dOff, dLen] = strings.add(idx.meta.diffId, false);
  const [cOff, cLen] = strings.add(idx.meta.compressedDigest, false);
  m.writeUInt32LE(dOff, META.diffIdOff);
  m.writeUInt32LE(dLen, META.diffIdLen);
  m.writeUInt32LE(cOff, META.digestOff);
  m.writeUInt32LE(cLen, META.digestLen);
  return m;
}

/** Directory child ranges, inode numbers and link counts, derived from the sorted order. */
function deriveLinks(entries: readonly BuiltEntry[]): { childStart: Uint32Array; childCount: Uint32Array; inode: Uint32Array; nlink: Uint32Array } {
  const n = entries.length;
  const childStart = new Uint32Array(n);
  const childCount = new Uint32Array(n);
  const inode = new Uint32Array(n);
  const nlink = new Uint32Array(n);
  const indexOfPath = new Map<string, number>();
  const groupFirst = new Map<number, number>();
  const groupCount = new Map<number, number>();
  entries.forEach((e, i) => {
    indexOfPath.set(e.path, i);
    if (!groupFirst.has(e.inodeGroup)) groupFirst.set(e.inodeGroup, i);
    groupCount.set(e.inodeGroup, (groupCount.get(e.inodeGroup) ?? 0) + 1);
  });
  entries.forEach((e, i) => {
    inode[i] = (groupFirst.get(e.inodeGroup) ?? i) + 1;
    nlink[i] = e.type === 'dir' ? 2 : (groupCount.get(e.inodeGroup) ?? 1);
    if (i === 0) return;
    const p = indexOfPath.get(parentOf(e.path));
    if (p === undefined || entries[p]?.type !== 'dir') throw invalidArgument('CLIP_INDEX_ORPHAN', `entry ${JSON.stringify(e.path)} has no parent directory`);
    if (childCount[p] === 0) childStart[p] = i;
    childCount[p] = (childCount[p] ?? 0) + 1;
    if (e.type === 'dir') nlink[p] = (nlink[p] ?? 2) + 1;
  });
  return { childStart, childCount, inode, nlink };
}

function encodeEntries(entries: readonly BuiltEntry[], strings: StringTable): { entries: Buffer; xattrs: Buffer } {
  if (entries[0]?.path !== '' || entries[0].type !== 'dir') throw invalidArgument('CLIP_INDEX_NO_ROOT', 'index entries must start with the root directory');
  const links = deriveLinks(entries);
  const rows = Buffer.alloc(entries.length * ROW.bytes);
  const xattrRows: Buffer[] = [];
  let xattrTotal = 0;
  entries.forEach((e, i) => {
    const r = rows.subarray(i * ROW.bytes, (i + 1) * ROW.bytes);
    writeRow(r, e, strings);
    r.writeUInt32LE(xattrTotal, ROW.xattrStart);
    r.writeUInt32LE(e.xattrs.length, ROW.xattrCount);
    for (const x of e.xattrs) {
      xattrRows.push(encodeXattr(x.name, x.value, strings));
      xattrTotal++;
    }
    r.writeUInt32LE(links.inode[i] ?? 0, ROW.inode);
    r.writeUInt32LE(links.childStart[i] ?? 0, ROW.childStart);
    r.writeUInt32LE(links.childCount[i] ?? 0, ROW.childCount);
    r.writeUInt32LE(links.nlink[i] ?? 1, ROW.nlink);
  });
  return { entries: rows, xattrs: Buffer.concat(xattrRows) };
}

function writeRow(r: Buffer, e: BuiltEntry, strings: StringTable): void {
  const [pOff, pLen] = strings.add(e.path, false);
  const slash = Buffer.from(e.path).lastIndexOf(0x2f);
  const [uOff, uLen] = strings.add(e.uname, true);
  const [gOff, gLen] = strings.add(e.gname, true);
  const [lOff, lLen] = strings.add(e.link, true);
  if (uLen > 0xffff || gLen > 0xffff || lLen > 0xffff || pLen > 0xffff) {
    throw invalidArgument('CLIP_INDEX_FIELD_RANGE', `entry ${JSON.stringify(e.path)}: a name is too long`);
  }
  for (const v of [e.mode, e.uid, e.gid, e.devMajor, e.devMinor]) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff_ffff) throw invalidArgument('CLIP_INDEX_FIELD_RANGE', `entry ${JSON.stringify(e.path)}: numeric field out of range`);
  }
  r.writeUInt32LE(pOff, ROW.pathOff);
  r.writeUInt16LE(pLen, ROW.pathLen);
  r.writeUInt16LE(slash + 1, ROW.nameStart);
  r.writeUInt8(codeOf(TYPE_CODES, e.type), ROW.type);
  r.writeUInt8(e.opaque ? FLAG_OPAQUE : 0, ROW.flags);
  r.writeUInt8(e.linkedType === undefined ? 0 : codeOf(TYPE_CODES, e.linkedType), ROW.linkedType);
  r.writeUInt32LE(e.mode, ROW.mode);
  r.writeUInt32LE(e.uid, ROW.uid);
  r.writeUInt32LE(e.gid, ROW.gid);
  r.writeUInt32LE(uOff, ROW.unameOff);
  r.writeUInt16LE(uLen, ROW.unameLen);
  r.writeUInt32LE(gOff, ROW.gnameOff);
  r.writeUInt16LE(gLen, ROW.gnameLen);
  r.writeUInt32LE(lOff, ROW.linkOff);
  r.writeUInt16LE(lLen, ROW.linkLen);
  r.writeDoubleLE(e.mtimeSec, ROW.mtimeSec);
  r.writeUInt32LE(e.mtimeNsec, ROW.mtimeNsec);
  writeU64(r, e.size, ROW.sizeLo, ROW.sizeHi);
  writeU64(r, e.dataOffset, ROW.dataLo, ROW.dataHi);
  r.writeUInt32LE(e.devMajor, ROW.devMajor);
  r.writeUInt32LE(e.devMinor, ROW.devMinor);
}

function encodeXattr(name: string, value: Buffer, strings: StringTable): Buffer {
  const row = Buffer.alloc(XATTR_ROW.bytes);
  const [nOff, nLen] = strings.add(name, true);
  if (nLen > 0xffff) throw invalidArgument('CLIP_INDEX_FIELD_RANGE', `xattr name ${JSON.stringify(name.slice(0, 64))} is too long`);
  row.writeUInt32LE(nOff, XATTR_ROW.nameOff);
  row.writeUInt16LE(nLen, XATTR_ROW.nameLen);
  row.writeUInt32LE(value.length === 0 ? 0 : strings.addBytes(value), XATTR_ROW.valueOff);
  row.writeUInt32LE(value.length, XATTR_ROW.valueLen);
  return row;
}

function assemble(sections: Array<[number, Buffer]>): Buffer {
  const table = Buffer.alloc(4 + sections.length * SECTION_ROW_BYTES);
  table.writeUInt32LE(sections.length, 0);
  let off = table.length;
  sections.forEach(([id, body], i) => {
    const at = 4 + i * SECTION_ROW_BYTES;
    table.writeUInt32LE(id, at);
    table.writeUInt32LE(off, at + 4);
    table.writeUInt32LE(body.length, at + 8);
    off += body.length;
  });
  return Buffer.concat([table, ...sections.map(([, body]) => body)]);
}
