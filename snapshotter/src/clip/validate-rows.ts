/**
 * One pass over every decoded row: string refs, data ranges, xattr ranges, child ranges, inode
 * numbers, path syntax and sort order. After it, the reader may trust every field it reads.
 */
import { ROW, TYPE_CODES, XATTR_ROW, compareBytes, corrupt } from './index-format.js';
import type { IndexLayout } from './index-reader.js';

const TYPE_DIR = TYPE_CODES.indexOf('dir');
const TYPE_FILE = TYPE_CODES.indexOf('file');
const TYPE_HARDLINK = TYPE_CODES.indexOf('hardlink');
const LINKABLE = new Set(['file', 'char', 'block', 'fifo'].map((t) => TYPE_CODES.indexOf(t as 'file')));

/** Throws data_corrupt unless every row of the layout is well-formed. */
export function validateRows(l: IndexLayout): void {
  const p = l.payload;
  const n = l.meta.entryCount;
  validateXattrTable(l);
  let children = 0;
  for (let i = 0; i < n; i++) {
    const r = l.entriesOff + i * ROW.bytes;
    validateRow(l, r, i);
    children += p.readUInt32LE(r + ROW.childCount);
    if (children > n - 1) throw corrupt('child ranges overlap');
    if (i > 1 && compareRows(l, r - ROW.bytes, r) >= 0) throw corrupt(`entry ${i} is out of order`);
  }
  for (let i = 0; i < n; i++) validateChildren(l, i);
}

function validateRow(l: IndexLayout, r: number, i: number): void {
  const p = l.payload;
  const n = l.meta.entryCount;
  const type = p.readUInt8(r + ROW.type);
  if (type === 0 || type >= TYPE_CODES.length) throw corrupt(`entry ${i} has an unknown type`);
  const pathOff = p.readUInt32LE(r + ROW.pathOff);
  const pathLen = p.readUInt16LE(r + ROW.pathLen);
  const nameStart = p.readUInt16LE(r + ROW.nameStart);
  checkString(l, pathOff, pathLen, i);
  if (i === 0 ? pathLen !== 0 || type !== TYPE_DIR : pathLen === 0) throw corrupt(`entry ${i}: root must be the first entry`);
  checkPath(l, pathOff, pathLen, nameStart, i);
  checkString(l, p.readUInt32LE(r + ROW.unameOff), p.readUInt16LE(r + ROW.unameLen), i);
  checkString(l, p.readUInt32LE(r + ROW.gnameOff), p.readUInt16LE(r + ROW.gnameLen), i);
  checkString(l, p.readUInt32LE(r + ROW.linkOff), p.readUInt16LE(r + ROW.linkLen), i);
  if (type === TYPE_HARDLINK && !LINKABLE.has(p.readUInt8(r + ROW.linkedType))) throw corrupt(`entry ${i}: bad hardlink type`);
  const mtime = p.readDoubleLE(r + ROW.mtimeSec);
  if (!Number.isSafeInteger(mtime) || p.readUInt32LE(r + ROW.mtimeNsec) >= 1e9) throw corrupt(`entry ${i}: bad mtime`);
  if (p.readUInt32LE(r + ROW.sizeHi) >= 1 << 21 || p.readUInt32LE(r + ROW.dataHi) >= 1 << 21) throw corrupt(`entry ${i}: size out of range`);
  const size = p.readUInt32LE(r + ROW.sizeHi) * 2 ** 32 + p.readUInt32LE(r + ROW.sizeLo);
  const data = p.readUInt32LE(r + ROW.dataHi) * 2 ** 32 + p.readUInt32LE(r + ROW.dataLo);
  if ((type === TYPE_FILE || type === TYPE_HARDLINK) && data + size > l.meta.uncompressedSize) {
    throw corrupt(`entry ${i}: data range past the end of the layer`);
  }
  const xs = p.readUInt32LE(r + ROW.xattrStart);
  if (xs + p.readUInt32LE(r + ROW.xattrCount) > l.xattrCount) throw corrupt(`entry ${i}: xattr range out of bounds`);
  const inode = p.readUInt32LE(r + ROW.inode);
  if (inode < 1 || inode > n) throw corrupt(`entry ${i}: inode out of range`);
  const cs = p.readUInt32LE(r + ROW.childStart);
  const cc = p.readUInt32LE(r + ROW.childCount);
  if (cc > 0 && (type !== TYPE_DIR || cs < 1 || cs + cc > n)) throw corrupt(`entry ${i}: child range out of bounds`);
}

function checkString(l: IndexLayout, off: number, len: number, i: number): void {
  if (off + len > l.stringsLen) throw corrupt(`entry ${i}: string out of range`);
}

/** No empty, '.', '..' components, no NUL, and the name starts after the last '/'. */
function checkPath(l: IndexLayout, off: number, len: number, nameStart: number, i: number): void {
  const p = l.payload;
  const base = l.stringsOff + off;
  let compStart = 0;
  let lastSlash = -1;
  for (let k = 0; k <= len; k++) {
    const c = k === len ? 0x2f : p[base + k];
    if (c === 0) throw corrupt(`entry ${i}: NUL in path`);
    if (c !== 0x2f) continue;
    const compLen = k - compStart;
    const dot = p[base + compStart] === 0x2e;
    if (len > 0 && (compLen === 0 || (dot && (compLen === 1 || (compLen === 2 && p[base + compStart + 1] === 0x2e))))) {
      throw corrupt(`entry ${i}: path has an empty, '.' or '..' component`);
    }
    if (k < len) lastSlash = k;
    compStart = k + 1;
  }
  if (nameStart !== lastSlash + 1) throw corrupt(`entry ${i}: name offset does not match the path`);
}

function validateXattrTable(l: IndexLayout): void {
  const p = l.payload;
  for (let x = 0; x < l.xattrCount; x++) {
    const at = l.xattrsOff + x * XATTR_ROW.bytes;
    const nameOff = p.readUInt32LE(at + XATTR_ROW.nameOff);
    const nameLen = p.readUInt16LE(at + XATTR_ROW.nameLen);
    const valueOff = p.readUInt32LE(at + XATTR_ROW.valueOff);
    const valueLen = p.readUInt32LE(at + XATTR_ROW.valueLen);
    if (nameOff + nameLen > l.stringsLen || valueOff + valueLen > l.stringsLen || nameLen === 0) {
      throw corrupt(`xattr ${x} out of range`);
    }
  }
}

/** Every child of a directory must name that directory as its parent. */
function validateChildren(l: IndexLayout, i: number): void {
  const p = l.payload;
  const r = l.entriesOff + i * ROW.bytes;
  const cc = p.readUInt32LE(r + ROW.childCount);
  if (cc === 0) return;
  const cs = p.readUInt32LE(r + ROW.childStart);
  const dirOff = l.stringsOff + p.readUInt32LE(r + ROW.pathOff);
  const dirLen = p.readUInt16LE(r + ROW.pathLen);
  for (let c = cs; c < cs + cc; c++) {
    const cr = l.entriesOff + c * ROW.bytes;
    const cOff = l.stringsOff + p.readUInt32LE(cr + ROW.pathOff);
    const parentLen = Math.max(0, p.readUInt16LE(cr + ROW.nameStart) - 1);
    if (parentLen !== dirLen || compareBytes(p, cOff, cOff + parentLen, p, dirOff, dirOff + dirLen) !== 0) {
      throw corrupt(`entry ${c} is listed under a directory that is not its parent`);
    }
  }
}

/** Order of two rows by (parent, name) bytes: negative, zero or positive. */
export function compareRows(l: IndexLayout, a: number, b: number): number {
  const p = l.payload;
  const aOff = l.stringsOff + p.readUInt32LE(a + ROW.pathOff);
  const bOff = l.stringsOff + p.readUInt32LE(b + ROW.pathOff);
  const aName = p.readUInt16LE(a + ROW.nameStart);
  const bName = p.readUInt16LE(b + ROW.nameStart);
  const c = compareBytes(p, aOff, aOff + Math.max(0, aName - 1), p, bOff, bOff + Math.max(0, bName - 1));
  if (c !== 0) return c;
  return compareBytes(p, aOff + aName, aOff + p.readUInt16LE(a + ROW.pathLen), p, bOff + bName, bOff + p.readUInt16LE(b + ROW.pathLen));
}
