/**
 * One FUSE connection on a /dev/fuse descriptor: reads requests as the descriptor becomes
 * readable (the addon's uv_poll reader, never a thread-pool slot), answers INIT and the requests
 * that take no reply itself, hands the rest to a RequestHandler and writes each reply as it
 * completes — many requests are in flight at once. `pause` stops reading and waits for the
 * replies in flight, which is what a hand-over needs: requests that arrive meanwhile wait in the
 * kernel's queue for whichever process reads the descriptor next.
 */
import { closeSync, writeSync } from 'node:fs';
import { messageOf } from '../../errors/index.js';
import { silentLogger, type Logger } from '../../log/index.js';
import { fusedev, type FusedevNative, type ReaderHandle } from './addon.js';
import type { ReadActivitySink } from '../../storage/read-activity.js';
import type { ReplySink, RequestHandler } from './layer-dispatcher.js';
import { recycle } from './reply-buffers.js';
import { MAX_WRITE_BYTES, OP, OUT_HEADER_BYTES, decodeInit, decodeRequest, errorReply, initReply, negotiate, reply, type Negotiated } from './wire.js';

/** What the session asks for in INIT. */
export interface SessionLimits {
  maxReadahead: number;
  maxPages: number;
}

/** Options of a KernelSession. */
export interface SessionOptions {
  fd: number;
  handler: RequestHandler;
  log?: Logger | undefined;
  limits?: SessionLimits | undefined;
  /** The parameters of a connection another process initialised (hand-over); absent = expect INIT. */
  negotiated?: Negotiated | undefined;
  /** Called once when the kernel ends the connection (unmounted or aborted). */
  onEnd?: ((errno: number) => void) | undefined;
  /** The addon (tests inject a fake; without `spliceReply` every reply is a buffer). */
  native?: (Pick<FusedevNative, 'startReader' | 'stopReader'> & Partial<Pick<FusedevNative, 'spliceReply'>>) | undefined;
  /** Reply writer (tests inject a fake); default writeSync on the descriptor. */
  write?: ((fd: number, b: Buffer) => void) | undefined;
  /** Told of every request handed to the handler, and of its reply: background work yields to them (`storage/read-activity.ts`). */
  activity?: ReadActivitySink | undefined;
}

const DEFAULT_LIMITS: SessionLimits = { maxReadahead: 1 << 20, maxPages: 256 };
/** The kernel refuses a read buffer that cannot hold a WRITE of max_write bytes with its headers. */
const READ_BUFFER_BYTES = MAX_WRITE_BYTES + 4096;

/** A served /dev/fuse connection. */
export class KernelSession {
  readonly fd: number;
  readonly #o: SessionOptions;
  readonly #log: Logger;
  readonly #native: Pick<FusedevNative, 'startReader' | 'stopReader'> & Partial<Pick<FusedevNative, 'spliceReply'>>;
  readonly #sink: ReplySink | undefined;
  #reader: ReaderHandle | undefined;
  #negotiated: Negotiated | undefined;
  #inflight = 0;
  #drained: Array<() => void> = [];
  #initWaiters: Array<(err?: Error) => void> = [];
  #ended = false;
  #closed = false;

  constructor(o: SessionOptions) {
    this.fd = o.fd;
    this.#o = o;
    this.#log = o.log ?? silentLogger();
    this.#native = o.native ?? fusedev();
    this.#negotiated = o.negotiated;
    const splice = this.#native.spliceReply?.bind(this.#native);
    this.#sink = splice && { spliceRead: (unique, fd, position, length) => this.#spliceRead(splice, unique, fd, position, length) };
  }

  /** The connection's INIT parameters once known. */
  get negotiated(): Negotiated | undefined {
    return this.#negotiated;
  }

  /** Requests being answered now. */
  get inflight(): number {
    return this.#inflight;
  }

  /** Whether the kernel ended the connection. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Start (or resume) reading requests. */
  start(): void {
    if (this.#reader !== undefined || this.#ended) return;
    this.#reader = this.#native.startReader(this.fd, READ_BUFFER_BYTES, (buf, errno) => {
      if (buf === null) this.#end(errno);
      else this.#request(buf);
    });
  }

  /** Resolves once INIT was answered; rejects when the connection ends first. */
  initialized(): Promise<void> {
    if (this.#negotiated !== undefined) return Promise.resolve();
    if (this.#ended) return Promise.reject(new Error('the FUSE connection ended before INIT'));
    return new Promise((resolve, reject) => this.#initWaiters.push((err) => (err ? reject(err) : resolve())));
  }

  /** Stop reading; resolves once every reply in flight was written. */
  pause(): Promise<void> {
    this.#stopReader();
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** Stop reading and close the descriptor (the kernel aborts the connection if no one else holds it). */
  close(): void {
    this.#stopReader();
    if (this.#closed) return;
    this.#closed = true;
    this.#ended = true;
    try {
      closeSync(this.fd);
    } catch (err) {
      this.#log.debug({ fd: this.fd, err: messageOf(err) }, 'fuse: closing /dev/fuse failed');
    }
  }

  #stopReader(): void {
    if (this.#reader === undefined) return;
    this.#native.stopReader(this.#reader);
    this.#reader = undefined;
  }

  #end(errno: number): void {
    this.#reader = undefined;
    if (this.#ended) return;
    this.#ended = true;
    // ENODEV is the normal end (unmounted); anything else is worth a line.
    if (errno !== 19) this.#log.warn({ fd: this.fd, errno }, 'fuse: the connection ended');
    for (const w of this.#initWaiters.splice(0)) w(new Error(`the FUSE connection ended before INIT (errno ${errno})`));
    this.#o.onEnd?.(errno);
  }

  #request(buf: Buffer): void {
    let req;
    try {
      req = decodeRequest(buf);
    } catch (err) {
      // Without a trustworthy header there is no unique to answer; the kernel never sends these.
      this.#log.error({ bytes: buf.length, err: messageOf(err) }, 'fuse: undecodable request');
      return;
    }
    switch (req.opcode) {
      case OP.INIT: {
        const n = negotiate(decodeInit(req.body), this.#o.limits ?? DEFAULT_LIMITS);
        this.#write(initReply(req.unique, n));
        this.#negotiated = n;
        for (const w of this.#initWaiters.splice(0)) w();
        return;
      }
      case OP.FORGET:
      case OP.BATCH_FORGET:
        // Node ids are index rows: nothing to forget.
        return;
      case OP.INTERRUPT:
        // Reads end on the LayerReader's own deadline; the kernel waits for that reply.
        return;
      case OP.DESTROY:
        this.#write(reply(req.unique, 0));
        return;
    }
    if (this.#negotiated === undefined) {
      this.#write(errorReply(req.unique, -5));
      return;
    }
    this.#inflight++;
    const activity = this.#o.activity;
    activity?.begin();
    const unique = req.unique;
    this.#o.handler(req, this.#sink).then(
      (out) => out && this.#write(out),
      (err: unknown) => {
        this.#log.error({ opcode: req.opcode, err: messageOf(err) }, 'fuse: request failed');
        this.#write(errorReply(unique, -5));
      },
    ).finally(() => {
      activity?.end();
      this.#inflight--;
      if (this.#inflight === 0 && this.#reader === undefined) for (const d of this.#drained.splice(0)) d();
    });
  }

  #spliceRead(splice: NonNullable<FusedevNative['spliceReply']>, unique: bigint, fd: number, position: number, length: number): boolean {
    const header = Buffer.allocUnsafe(OUT_HEADER_BYTES);
    header.writeUInt32LE(OUT_HEADER_BYTES + length, 0);
    header.writeInt32LE(0, 4);
    header.writeBigUInt64LE(unique, 8);
    try {
      return splice(this.fd, header, fd, position, length);
    } catch (err) {
      // The request is gone (ENOENT) or the connection ended: as a failed write, the reply is done.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENODEV') this.#log.warn({ err: messageOf(err) }, 'fuse: splicing a reply failed');
      return true;
    }
  }

  #write(b: Buffer): void {
    try {
      if (this.#o.write) return this.#o.write(this.fd, b);
      try {
        writeSync(this.fd, b);
      } finally {
        // The kernel copied the reply during the write: its buffer can serve the next one.
        recycle(b);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone; ENODEV: the connection ended.
      if (code !== 'ENOENT' && code !== 'ENODEV') this.#log.warn({ err: messageOf(err) }, 'fuse: writing a reply failed');
    }
  }
}
