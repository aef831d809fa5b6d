/**
 * A push-based streaming tar parser that never buffers file data. States:
 *   header  – collecting the next 512-byte block (an entry header, an extension header or a zero block)
 *   ext     – collecting the body of a PAX (`x`/`g`) or GNU long name/link (`L`/`K`) record
 *   skip    – passing over file data and the padding to the next block boundary
 *   eof     – two zero blocks seen; everything after (record padding) is ignored
 * Every emitted entry carries the offset of its data in the (uncompressed) byte stream.
 * Every size a header declares is checked before it moves the parser (a negative one would make
 * it step backwards forever), and members and their xattrs are counted against `ClipLimits`.
 */
import { dataCorrupt, internal, invalidArgument } from '../errors/index.js';
import { DEFAULT_CLIP_LIMITS, MAX_TAR_ENTRY_BYTES, type ClipLimits } from './limits.js';
import { emptyPax, parsePax, type PaxOverrides } from './pax.js';
import { BLOCK, isZeroBlock, parseHeader, type RawHeader } from './tar-header.js';
import type { Xattr } from './types.js';

/** One tar member after applying PAX and GNU extensions. */
export interface TarEntry {
  name: string;
  linkname: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  mtimeSec: number;
  mtimeNsec: number;
  size: number;
  devMajor: number;
  devMinor: number;
  xattrs: Xattr[];
  headerOffset: number;
  dataOffset: number;
}

const MAX_PAX_BYTES = 1 << 20;
const MAX_LONGNAME_BYTES = 64 << 10;
/** Types whose size field never announces data (as Go's archive/tar treats them). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

type ExtKind = 'x' | 'g' | 'L' | 'K';
type State =
  | { type: 'header' }
  | { type: 'ext'; kind: ExtKind; body: Buffer; filled: number; at: number }
  | { type: 'skip'; remaining: number }
  | { type: 'eof' };

/** Streaming tar parser; call `push` with each chunk and `end` once the stream is done. */
export class TarParser {
  #onEntry: (entry: TarEntry) => void;
  #state: State = { type: 'header' };
  #block = Buffer.alloc(BLOCK);
  #blockFill = 0;
  #offset = 0;
  #zeroBlocks = 0;
  #global: PaxOverrides = emptyPax();
  #local: PaxOverrides | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #limits: Pick<ClipLimits, 'maxEntries' | 'maxXattrBytesPerEntry' | 'maxXattrBytesTotal'>;
  #entries = 0;
  #xattrBytes = 0;

  constructor(onEntry: (entry: TarEntry) => void, limits: Partial<ClipLimits> = {}) {
    this.#onEntry = onEntry;
    this.#limits = { ...DEFAULT_CLIP_LIMITS, ...limits };
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** Feed the next chunk of the tar stream. */
  push(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let pos = 0;
    while (pos < buf.length) {
      const used = this.#step(buf, pos);
      // Every state consumes input; a step that does not would loop forever on hostile input.
      if (!(used > 0)) throw internal('CLIP_TAR_PARSER_STALLED', `tar parser made no progress at offset ${this.#offset}`);
      pos += used;
    }
  }

  /** Signal the end of the stream; throws if it ended inside an entry. */
  end(): void {
    const s = this.#state;
    if (s.type === 'eof') return;
    const atBoundary = s.type === 'header' && this.#blockFill === 0;
    const pendingExt = this.#local !== undefined || this.#longName !== undefined || this.#longLink !== undefined;
    if (!atBoundary || pendingExt) {
      throw dataCorrupt('CLIP_TAR_TRUNCATED', `tar stream truncated at offset ${this.#offset}`);
    }
  }

  /** Consume bytes from buf[pos..] for the current state; returns how many were used. */
  #step(buf: Buffer, pos: number): number {
    const s = this.#state;
    const avail = buf.length - pos;
    switch (s.type) {
      case 'eof':
        this.#offset += avail;
        return avail;
      case 'skip': {
        const n = Math.min(avail, s.remaining);
        s.remaining -= n;
        this.#offset += n;
        if (s.remaining === 0) this.#state = { type: 'header' };
        return n;
      }
      case 'ext': {
        const n = Math.min(avail, s.body.length - s.filled);
        buf.copy(s.body, s.filled, pos, pos + n);
        s.filled += n;
        this.#offset += n;
        if (s.filled === s.body.length) this.#finishExt(s.kind, s.body, s.at);
        return n;
      }
      case 'header': {
        const n = Math.min(avail, BLOCK - this.#blockFill);
        buf.copy(this.#block, this.#blockFill, pos, pos + n);
        this.#blockFill += n;
        this.#offset += n;
        if (this.#blockFill === BLOCK) {
          this.#blockFill = 0;
          this.#onBlock(this.#offset - BLOCK);
        }
        return n;
      }
    }
  }

  #onBlock(at: number): void {
    if (isZeroBlock(this.#block)) {
      this.#zeroBlocks++;
      if (this.#zeroBlocks >= 2) this.#state = { type: 'eof' };
      return;
    }
    if (this.#zeroBlocks > 0) {
      throw dataCorrupt('CLIP_TAR_BAD_HEADER', `tar header at offset ${at}: data after an end-of-archive block`);
    }
    const h = parseHeader(this.#block, at);
    switch (h.typeflag) {
      case 'x': case 'g': case 'L': case 'K':
        this.#startExt(h.typeflag, h.size, at);
        return;
      case 'S':
        throw invalidArgument('CLIP_TAR_SPARSE_UNSUPPORTED', `tar entry ${JSON.stringify(h.name)} at offset ${at}: GNU sparse files are not supported`);
      case 'V':
        this.#skip(checkSize(h.size, at)); // GNU volume label: carries no file
        return;
      case 'M': case 'N':
        throw invalidArgument('CLIP_TAR_UNSUPPORTED_TYPE', `tar entry ${JSON.stringify(h.name)} at offset ${at}: type '${h.typeflag}' is not supported`);
      default:
        this.#emit(h, at);
    }
  }

  #startExt(kind: ExtKind, size: number, at: number): void {
    checkSize(size, at);
    const limit = kind === 'x' || kind === 'g' ? MAX_PAX_BYTES : MAX_LONGNAME_BYTES;
    if (size > limit) {
      throw invalidArgument('CLIP_TAR_HEADER_TOO_LARGE', `tar extension header '${kind}' at offset ${at} is ${size} bytes (limit ${limit})`);
    }
    if (size === 0) {
      this.#finishExt(kind, Buffer.alloc(0), at);
      return;
    }
    this.#state = { type: 'ext', kind, body: Buffer.alloc(size), filled: 0, at };
  }

  #finishExt(kind: ExtKind, body: Buffer, at: number): void {
    if (kind === 'x') parsePax(body, (this.#local ??= emptyPax()), at);
    else if (kind === 'g') parsePax(body, this.#global, at);
    else {
      let end = body.indexOf(0);
      if (end < 0) end = body.length;
      const text = body.toString('utf8', 0, end);
      if (kind === 'L') this.#longName = text;
      else this.#longLink = text;
    }
    this.#skipPadding(body.length);
  }

  #emit(h: RawHeader, at: number): void {
    const l = this.#local;
    const g = this.#global;
    const size = checkSize(l?.size ?? g.size ?? h.size, at);
    if (++this.#entries > this.#limits.maxEntries) {
      throw invalidArgument('CLIP_TAR_TOO_MANY_ENTRIES', `tar stream has more than ${this.#limits.maxEntries} members (at offset ${at})`);
    }
    const entry: TarEntry = {
      name: l?.path ?? this.#longName ?? g.path ?? h.name,
      linkname: l?.linkpath ?? this.#longLink ?? g.linkpath ?? h.linkname,
      typeflag: h.typeflag,
      mode: h.mode & 0o7777,
      uid: l?.uid ?? g.uid ?? h.uid,
      gid: l?.gid ?? g.gid ?? h.gid,
      uname: l?.uname ?? g.uname ?? h.uname,
      gname: l?.gname ?? g.gname ?? h.gname,
      mtimeSec: l?.mtimeSec ?? g.mtimeSec ?? h.mtime,
      mtimeNsec: (l?.mtimeSec !== undefined ? l.mtimeNsec : g.mtimeSec !== undefined ? g.mtimeNsec : 0) ?? 0,
      size: HEADER_ONLY.has(h.typeflag) ? 0 : size,
      devMajor: l?.devMajor ?? g.devMajor ?? h.devMajor,
      devMinor: l?.devMinor ?? g.devMinor ?? h.devMinor,
      xattrs: mergeXattrs(g, l),
      headerOffset: at,
      dataOffset: at + BLOCK,
    };
    this.#countXattrs(entry.xattrs, at);
    this.#local = undefined;
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#onEntry(entry);
    this.#skip(entry.size);
  }

  /** Global PAX xattrs apply to every later member, so they are counted once per member. */
  #countXattrs(xattrs: readonly Xattr[], at: number): void {
    if (xattrs.length === 0) return;
    let bytes = 0;
    for (const x of xattrs) bytes += Buffer.byteLength(x.name) + x.value.length;
    if (bytes > this.#limits.maxXattrBytesPerEntry) {
      throw invalidArgument('CLIP_TAR_XATTRS_TOO_LARGE', `tar entry at offset ${at}: ${bytes} bytes of xattrs (limit ${this.#limits.maxXattrBytesPerEntry} per entry)`);
    }
    this.#xattrBytes += bytes;
    if (this.#xattrBytes > this.#limits.maxXattrBytesTotal) {
      throw invalidArgument('CLIP_TAR_XATTRS_TOO_LARGE', `tar stream at offset ${at}: more than ${this.#limits.maxXattrBytesTotal} bytes of xattrs in all`);
    }
  }

  /** Skip `size` data bytes plus padding to the next block. */
  #skip(size: number): void {
    const total = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    this.#state = total === 0 ? { type: 'header' } : { type: 'skip', remaining: total };
  }

  #skipPadding(size: number): void {
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    this.#state = pad === 0 ? { type: 'header' } : { type: 'skip', remaining: pad };
  }
}

/** A declared data size the parser may skip: not negative, not absurd. */
function checkSize(size: number, at: number): number {
  if (!Number.isSafeInteger(size) || size < 0 || size > MAX_TAR_ENTRY_BYTES) {
    throw dataCorrupt('CLIP_TAR_SIZE_RANGE', `tar header at offset ${at}: size ${size} is negative or larger than ${MAX_TAR_ENTRY_BYTES}`);
  }
  return size;
}

function mergeXattrs(g: PaxOverrides, l: PaxOverrides | undefined): Xattr[] {
  if (g.xattrs.size === 0 && (l === undefined || l.xattrs.size === 0)) return [];
  const merged = new Map(g.xattrs);
  if (l !== undefined) for (const [k, v] of l.xattrs) merged.set(k, v);
  const out: Xattr[] = [];
  for (const [name, value] of merged) if (value !== null) out.push({ name, value });
  return out;
}
