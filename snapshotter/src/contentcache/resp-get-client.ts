/**
 * A minimal Redis client for one job: pipelined GETs of large chunk values on one plain TCP
 * connection (standalone Redis, optional AUTH), each reply's bytes read by the kernel straight into
 * a buffer of their own (`net` `onread`). ioredis collects a 4 MiB reply in 64 KiB pieces and
 * concatenates them, which on a warm node cost more CPU than anything else the read did; here a
 * reply is copied once, from the socket, and its memory can be moved to another thread. The caller
 * may hand it memory to receive into (`take`): buffers it got back from the thread it moved them to,
 * so a steady stream of replies allocates nothing (a fresh 4 MiB buffer costs page faults here and a
 * garbage collection where it ends up).
 *
 * Redis is untrusted: a reply's declared length is checked against a bound before any memory is
 * set aside for it (a longer value is read past and reported `too_large`), a malformed reply closes
 * the connection, and every request has a deadline (`timeoutMs` from when it was sent, connecting
 * included). Every failure rejects with an `unavailable` ClipError that never contains credentials;
 * the next request connects again.
 */
import { connect, type Socket } from 'node:net';
import { unavailable } from '../errors/index.js';

/** Where to connect and how long any request may wait. */
export interface RespGetClientOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  timeoutMs: number;
}

/** A GET's answer: the value, no such key, or a value longer than the caller allowed (not kept). */
export type GetReply = { type: 'value'; value: Buffer } | { type: 'null' } | { type: 'too_large'; bytes: number };

/** Memory of at least `bytes` to receive a value into, or undefined (a new buffer is allocated). */
export type TakeBuffer = (bytes: number) => ArrayBuffer | undefined;

interface Pending {
  kind: 'get' | 'auth';
  maxBytes: number;
  deadline: number;
  resolve: (r: GetReply) => void;
  reject: (e: Error) => void;
}

/** Bytes of a reply's header line before it is refused (`$<length>\r\n` needs ~14). */
const MAX_LINE = 1024;
const SCRATCH_BYTES = 64 << 10;

/** One connection's parser: header lines land in a scratch buffer, values in their own buffers. */
class Connection {
  readonly socket: Socket;
  readonly queue: Pending[] = [];
  #scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  #used = 0;
  /** The value being received: its buffer (value + CRLF) and bytes so far. */
  #body: { buf: Buffer; got: number; length: number } | undefined;
  /** Bytes of a refused (too long) value still to read past. */
  #skip = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #onClose: (c: Connection) => void;
  readonly #take: TakeBuffer | undefined;

  constructor(o: RespGetClientOptions, onClose: (c: Connection) => void, take?: TakeBuffer) {
    this.#onClose = onClose;
    this.#take = take;
    this.socket = connect({
      host: o.host,
      port: o.port,
      noDelay: true,
      onread: {
        // Called before each read: the rest of the value being received, else the scratch buffer.
        buffer: () => (this.#body ? this.#body.buf.subarray(this.#body.got) : this.#scratch.subarray(this.#used)),
        callback: (n: number, buf: Uint8Array) => {
          this.#received(n, buf);
          return true;
        },
      },
    });
    this.socket.on('error', (err) => this.fail(unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk connection: ${err.message}`)));
    this.socket.on('close', () => this.fail(unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'content cache bulk connection closed')));
    if (o.password) {
      const auth = o.username ? ['AUTH', o.username, o.password] : ['AUTH', o.password];
      this.#send({ kind: 'auth', maxBytes: 0, deadline: Date.now() + o.timeoutMs, resolve: () => {}, reject: () => {} }, auth);
    }
  }

  /** Queue one GET. */
  get(key: string, maxBytes: number, timeoutMs: number): Promise<GetReply> {
    return new Promise((resolve, reject) => this.#send({ kind: 'get', maxBytes, deadline: Date.now() + timeoutMs, resolve, reject }, ['GET', key]));
  }

  /** Close the connection and fail everything pending with `err`. */
  fail(err: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.socket.destroy();
    for (const p of this.queue.splice(0)) p.reject(err);
    this.#onClose(this);
  }

  #send(p: Pending, args: string[]): void {
    this.queue.push(p);
    const parts = args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`);
    this.socket.write(`*${args.length}\r\n${parts.join('')}`);
    this.socket.ref();
    if (this.queue.length === 1) this.#arm();
  }

  /** The deadline of the oldest request (replies come in order, so it is the one due first). */
  #arm(): void {
    clearTimeout(this.#timer);
    const head = this.queue[0];
    if (!head) {
      this.socket.unref();
      return;
    }
    this.#timer = setTimeout(() => {
      this.fail(unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk connection: no reply within the deadline`));
    }, Math.max(0, head.deadline - Date.now()));
  }

  #received(n: number, buf: Uint8Array): void {
    if (this.#closed) return;
    const body = this.#body;
    if (body && buf.buffer === body.buf.buffer) {
      body.got += n;
      if (body.got === body.length + 2) this.#finishBody();
      return;
    }
    this.#used += n;
    this.#parse();
  }

  /** Consume what the scratch buffer holds: header lines, skipped bytes, the start of a value. */
  #parse(): void {
    while (this.#used > 0 && !this.#closed) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, this.#used);
        this.#consume(n);
        this.#skip -= n;
        if (this.#skip === 0) this.#answer({ type: 'too_large', bytes: this.#skipped });
        continue;
      }
      const eol = this.#scratch.subarray(0, this.#used).indexOf('\r\n');
      if (eol < 0) {
        if (this.#used > MAX_LINE) this.#protocol('reply line too long');
        return;
      }
      const line = this.#scratch.toString('latin1', 0, eol);
      this.#consume(eol + 2);
      this.#line(line);
      if (this.#body) {
        // The value's first bytes may already be here; the rest is read straight into its buffer.
        const body = this.#body;
        const n = Math.min(this.#used, body.length + 2);
        this.#scratch.copy(body.buf, 0, 0, n);
        body.got = n;
        this.#consume(n);
        if (body.got === body.length + 2) this.#finishBody();
        else return;
      }
    }
  }

  #skipped = 0;

  #line(line: string): void {
    const head = this.queue[0];
    if (!head) return this.#protocol('reply with no request');
    const type = line[0];
    if (type === '-') return this.#redisError(line.slice(1));
    if (head.kind === 'auth') {
      if (type !== '+') return this.#protocol('unexpected reply to AUTH');
      this.#answer({ type: 'null' });
      return;
    }
    if (type !== '$' || !/^\$(?:-1|\d{1,15})$/.test(line)) return this.#protocol('unexpected reply to GET');
    const length = Number(line.slice(1));
    if (length < 0) return this.#answer({ type: 'null' });
    if (length > head.maxBytes) {
      this.#skipped = length;
      this.#skip = length + 2;
      return;
    }
    // Only now, with the length bounded: memory handed back to be reused, else a new buffer.
    const given = this.#take?.(length + 2);
    const buf = given !== undefined && given.byteLength >= length + 2 ? Buffer.from(given, 0, length + 2) : Buffer.allocUnsafeSlow(length + 2);
    this.#body = { buf, got: 0, length };
  }

  #finishBody(): void {
    const body = this.#body as { buf: Buffer; length: number };
    this.#body = undefined;
    if (body.buf[body.length] !== 0x0d || body.buf[body.length + 1] !== 0x0a) return this.#protocol('value not followed by CRLF');
    this.#answer({ type: 'value', value: body.buf.subarray(0, body.length) });
  }

  #answer(r: GetReply): void {
    const p = this.queue.shift();
    p?.resolve(r);
    this.#arm();
  }

  // An error reply answers its request (AUTH: the whole connection); the text is Redis's, bounded.
  #redisError(text: string): void {
    const p = this.queue[0] as Pending;
    const err = unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache ${p.kind === 'auth' ? 'refused AUTH' : 'GET failed'}: ${text.slice(0, 200)}`);
    if (p.kind === 'auth') return this.fail(err);
    this.queue.shift();
    p.reject(err);
    this.#arm();
  }

  #protocol(what: string): void {
    this.fail(unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache bulk connection: ${what}; closing it`));
  }

  #consume(n: number): void {
    this.#scratch.copy(this.#scratch, 0, n, this.#used);
    this.#used -= n;
  }
}

/** Pipelined GETs over one connection, made when first needed and again after a failure. */
export class RespGetClient {
  readonly #o: RespGetClientOptions;
  readonly #take: TakeBuffer | undefined;
  #conn: Connection | undefined;

  /** `take`: memory to receive values into (each reply's value is a view of it), when the caller has some. */
  constructor(o: RespGetClientOptions, take?: TakeBuffer) {
    this.#o = o;
    this.#take = take;
  }

  /** GET `key`; a value longer than `maxBytes` is read past, not kept. Rejects `unavailable` on any failure. */
  get(key: string, maxBytes: number): Promise<GetReply> {
    this.#conn ??= new Connection(this.#o, (c) => {
      if (this.#conn === c) this.#conn = undefined;
    }, this.#take);
    return this.#conn.get(key, maxBytes, this.#o.timeoutMs);
  }

  /** Close the connection; what is pending fails. */
  close(): void {
    this.#conn?.fail(unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'content cache bulk connection closed by its owner'));
  }
}
