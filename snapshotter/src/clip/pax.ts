/**
 * PAX extended header records (`LEN KEY=VALUE\n`), parsed from bytes so that binary xattr values
 * survive intact.
 */
import { dataCorrupt, invalidArgument } from '../errors/index.js';

/** Overrides carried by PAX `x`/`g` headers; `undefined` means "use the ustar field". */
export interface PaxOverrides {
  path?: string | undefined;
  linkpath?: string | undefined;
  size?: number | undefined;
  uid?: number | undefined;
  gid?: number | undefined;
  uname?: string | undefined;
  gname?: string | undefined;
  mtimeSec?: number | undefined;
  mtimeNsec?: number | undefined;
  devMajor?: number | undefined;
  devMinor?: number | undefined;
  /** Insertion-ordered; a `null` value deletes an attribute inherited from a global header. */
  xattrs: Map<string, Buffer | null>;
}

/** An empty override set. */
export function emptyPax(): PaxOverrides {
  return { xattrs: new Map() };
}

/** Parse the body of a PAX header into `into` (later records override earlier ones). */
export function parsePax(body: Buffer, into: PaxOverrides, at: number): void {
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // NUL padding after the last record
    const space = body.indexOf(0x20, pos);
    if (space < 0 || space - pos > 20) throw badPax('record without a length', at);
    const len = Number(body.toString('latin1', pos, space));
    if (!Number.isInteger(len) || len <= space - pos + 1 || pos + len > body.length) {
      throw badPax('record length out of range', at);
    }
    const end = pos + len;
    if (body[end - 1] !== 0x0a) throw badPax('record not newline-terminated', at);
    const eq = body.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= end) throw badPax('record without "="', at);
    const key = body.toString('utf8', space + 1, eq);
    applyRecord(key, body.subarray(eq + 1, end - 1), into, at);
    pos = end;
  }
}

function applyRecord(key: string, value: Buffer, into: PaxOverrides, at: number): void {
  if (key.startsWith('GNU.sparse.')) {
    throw invalidArgument('CLIP_TAR_SPARSE_UNSUPPORTED', `tar entry at offset ${at}: GNU sparse files are not supported`);
  }
  if (key.startsWith('SCHILY.xattr.')) {
    const name = key.slice('SCHILY.xattr.'.length);
    // An empty value in a later header deletes the attribute (POSIX pax semantics).
    into.xattrs.set(name, value.length === 0 ? null : Buffer.from(value));
    return;
  }
  const text = value.toString('utf8');
  const unset = text === '';
  switch (key) {
    case 'path': into.path = unset ? undefined : text; return;
    case 'linkpath': into.linkpath = unset ? undefined : text; return;
    case 'uname': into.uname = unset ? undefined : text; return;
    case 'gname': into.gname = unset ? undefined : text; return;
    case 'size': into.size = unset ? undefined : paxInt(text, key, at); return;
    case 'uid': into.uid = unset ? undefined : paxInt(text, key, at); return;
    case 'gid': into.gid = unset ? undefined : paxInt(text, key, at); return;
    case 'SCHILY.devmajor': into.devMajor = unset ? undefined : paxInt(text, key, at); return;
    case 'SCHILY.devminor': into.devMinor = unset ? undefined : paxInt(text, key, at); return;
    case 'mtime': applyMtime(text, into, at); return;
    default: return; // atime, ctime, comment, charset, vendor keys: not part of the index
  }
}

function paxInt(text: string, key: string, at: number): number {
  if (!/^[0-9]{1,16}$/.test(text)) throw badPax(`${key} is not a decimal integer`, at);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw invalidArgument('CLIP_TAR_NUMBER_RANGE', `tar entry at offset ${at}: ${key} out of range`);
  return n;
}

/** `mtime` is decimal seconds with an optional fraction, possibly negative. */
function applyMtime(text: string, into: PaxOverrides, at: number): void {
  if (text === '') {
    into.mtimeSec = undefined;
    into.mtimeNsec = undefined;
    return;
  }
  const m = /^(-?)([0-9]{1,16})(?:\.([0-9]+))?$/.exec(text);
  if (m === null) throw badPax('mtime is not a decimal number', at);
  const whole = Number(m[2]);
  const nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9));
  if (m[1] === '-') {
    into.mtimeSec = nsec > 0 ? -whole - 1 : -whole;
    into.mtimeNsec = nsec > 0 ? 1e9 - nsec : 0;
  } else {
    into.mtimeSec = whole;
    into.mtimeNsec = nsec;
  }
}

function badPax(detail: string, at: number): Error {
  return dataCorrupt('CLIP_TAR_BAD_PAX', `PAX header at offset ${at}: ${detail}`);
}
