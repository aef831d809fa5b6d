/**
 * A streaming parser of the zstd frame structure (RFC 8878 §3.1): it finds where each frame
 * starts and ends without decompressing anything, so a builder can decode frame by frame and a
 * reader can check fetched bytes before handing them to the decoder.
 *
 * States, in stream order:
 *   magic     4 bytes: a zstd frame (0xFD2FB528) or a skippable frame (0x184D2A50–5F)
 *   desc      1 byte: Frame_Header_Descriptor (sizes of the optional header fields)
 *   header    window descriptor, dictionary id and frame content size, as the descriptor says
 *   block     3-byte block header (last flag, type, size)
 *   body      the block's content (1 byte for an RLE block), skipped
 *   checksum  4 bytes when the descriptor says so; then the frame ends
 *   skipSize  4-byte length of a skippable frame; then skipBody, skipped
 */
import { dataCorrupt } from '../errors/index.js';

export const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;

/** One frame as the scanner reports it when it ends. */
export interface ScannedFrame {
  readonly skippable: boolean;
  /** Offset of the frame's magic in the stream. */
  readonly start: number;
  /** Offset just past the frame. */
  readonly end: number;
  /** Frame_Content_Size when the header carries it. */
  readonly contentSize: number | undefined;
  /** Window size the decoder needs (the content size for single-segment frames). */
  readonly windowSize: number;
  /** Dictionary id (0 = none). */
  readonly dictionaryId: number;
}

/** What the scanner tells its user while it walks the stream. */
export interface FrameScanHandler {
  /** A zstd frame's magic was read at `start`. */
  frameStart?(start: number): void;
  /** Bytes of the current zstd frame, in order (the magic included); not called for skippable frames. */
  frameBytes?(bytes: Buffer): void;
  frameEnd?(frame: ScannedFrame): void;
}

type FrameHeader = Pick<ScannedFrame, 'contentSize' | 'windowSize' | 'dictionaryId'>;
const NO_HEADER: FrameHeader = { contentSize: undefined, windowSize: 0, dictionaryId: 0 };

type State = 'magic' | 'desc' | 'header' | 'block' | 'body' | 'checksum' | 'skipSize' | 'skipBody';

const corrupt = (detail: string) => dataCorrupt('CLIP_ZRAN_ZSTD_FRAME', `zstd frame structure: ${detail}`);

/** Push the stream in any chunking; `end` checks it stopped at a frame boundary. */
export class ZstdFrameScanner {
  readonly #h: FrameScanHandler;
  #state: State = 'magic';
  /** Bytes still wanted by the current fixed-size field, or to skip in a body. */
  #need = 4;
  readonly #field = Buffer.alloc(16);
  #fieldLen = 0;
  #pos = 0;
  #frameStart = 0;
  #desc = 0;
  #lastBlock = false;
  #header: FrameHeader = NO_HEADER;
  readonly #magic = Buffer.alloc(4);
  /** The frame that just ended, reported once its last bytes are handed over. */
  #ended: ScannedFrame | undefined;

  constructor(handler: FrameScanHandler = {}) {
    this.#h = handler;
  }

  /** Offset of the next byte expected. */
  get position(): number {
    return this.#pos;
  }

  /** Feed the next chunk; throws data_corrupt (`CLIP_ZRAN_ZSTD_FRAME`) at the first invalid field. */
  push(chunk: Buffer): void {
    let i = 0;
    // Start in this chunk of the current zstd frame's bytes, or -1 outside one.
    let emitFrom = this.#inZstdFrame() ? 0 : -1;
    while (i < chunk.length) {
      const n = Math.min(this.#need, chunk.length - i);
      if (this.#state !== 'body' && this.#state !== 'skipBody') {
        chunk.copy(this.#field, this.#fieldLen, i, i + n);
        this.#fieldLen += n;
      }
      this.#need -= n;
      i += n;
      this.#pos += n;
      if (this.#need > 0) break;
      const before = this.#state;
      this.#advance();
      if (before === 'magic' && this.#state === 'desc') {
        // The magic may have straddled chunks: hand it over from the field copy.
        this.#h.frameBytes?.(Buffer.from(this.#magic));
        emitFrom = i;
      } else if (this.#state === 'magic') {
        if (emitFrom >= 0 && i > emitFrom) this.#h.frameBytes?.(chunk.subarray(emitFrom, i));
        emitFrom = -1;
        const f = this.#ended;
        this.#ended = undefined;
        if (f) this.#h.frameEnd?.(f);
      }
    }
    if (emitFrom >= 0 && chunk.length > emitFrom) this.#h.frameBytes?.(chunk.subarray(emitFrom));
  }

  /** The stream ended: it must be between frames. */
  end(): void {
    if (this.#state !== 'magic' || this.#fieldLen !== 0) throw corrupt(`the stream ends inside a frame (at ${this.#pos}, in ${this.#state})`);
  }

  #inZstdFrame(): boolean {
    return this.#state === 'desc' || this.#state === 'header' || this.#state === 'block' || this.#state === 'body' || this.#state === 'checksum';
  }

  /** A field or body is complete: move to the next state. */
  #advance(): void {
    const f = this.#field;
    const len = this.#fieldLen;
    this.#fieldLen = 0;
    switch (this.#state) {
      case 'magic': {
        const magic = f.readUInt32LE(0);
        this.#frameStart = this.#pos - 4;
        if (magic === ZSTD_MAGIC) {
          f.copy(this.#magic, 0, 0, 4);
          this.#h.frameStart?.(this.#frameStart);
          this.#to('desc', 1);
        } else if ((magic & SKIPPABLE_MASK) >>> 0 === SKIPPABLE_MAGIC) {
          this.#to('skipSize', 4);
        } else {
          throw corrupt(`no frame magic at offset ${this.#frameStart} (0x${magic.toString(16)})`);
        }
        return;
      }
      case 'desc': {
        const d = f[0] as number;
        if ((d & 0x08) !== 0) throw corrupt(`reserved descriptor bit set in the frame at ${this.#frameStart}`);
        this.#desc = d;
        this.#to('header', headerBytes(d));
        if (this.#need === 0) this.#advance();
        return;
      }
      case 'header':
        this.#header = parseHeader(this.#desc, f.subarray(0, len));
        this.#to('block', 3);
        return;
      case 'block': {
        const h = f.readUIntLE(0, 3);
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw corrupt(`reserved block type in the frame at ${this.#frameStart}`);
        this.#lastBlock = (h & 1) === 1;
        this.#to('body', type === 1 ? 1 : size);
        if (this.#need === 0) this.#advance();
        return;
      }
      case 'body':
        if (!this.#lastBlock) this.#to('block', 3);
        else if ((this.#desc & 0x04) !== 0) this.#to('checksum', 4);
        else this.#endFrame(false);
        return;
      case 'checksum':
        this.#endFrame(false);
        return;
      case 'skipSize':
        this.#to('skipBody', f.readUInt32LE(0));
        if (this.#need === 0) this.#advance();
        return;
      case 'skipBody':
        this.#endFrame(true);
        return;
      default: {
        const never: never = this.#state;
        throw new Error(`unknown state ${String(never)}`);
      }
    }
  }

  #to(state: State, need: number): void {
    this.#state = state;
    this.#need = need;
  }

  #endFrame(skippable: boolean): void {
    this.#ended = { skippable, start: this.#frameStart, end: this.#pos, ...(skippable ? NO_HEADER : this.#header) };
    this.#to('magic', 4);
  }
}

/** Bytes of the header fields after the descriptor. */
function headerBytes(desc: number): number {
  const singleSegment = (desc >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][desc & 3] as number;
  const fcsBytes = [singleSegment, 2, 4, 8][desc >> 6] as number;
  return (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
}

function parseHeader(desc: number, b: Buffer): FrameHeader {
  const singleSegment = ((desc >> 5) & 1) === 1;
  let at = 0;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = b[at++] as number;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  const dictBytes = [0, 1, 2, 4][desc & 3] as number;
  const dictionaryId = dictBytes > 0 ? b.readUIntLE(at, dictBytes) : 0;
  at += dictBytes;
  const fcsBytes = b.length - at;
  let contentSize: number | undefined;
  if (fcsBytes === 8) contentSize = b.readUInt32LE(at + 4) * 0x1_0000_0000 + b.readUInt32LE(at);
  else if (fcsBytes === 2) contentSize = b.readUInt16LE(at) + 256;
  else if (fcsBytes > 0) contentSize = b.readUIntLE(at, fcsBytes);
  if (singleSegment) windowSize = contentSize ?? 0;
  return { contentSize, windowSize, dictionaryId };
}

/** Every frame of a complete buffer (throws data_corrupt when it is not exactly a run of frames). */
export function scanZstdFrames(buf: Buffer): ScannedFrame[] {
  const frames: ScannedFrame[] = [];
  const s = new ZstdFrameScanner({ frameEnd: (f) => frames.push(f) });
  s.push(buf);
  s.end();
  return frames;
}
