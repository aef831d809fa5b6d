/**
 * The daemon's side of the FUSE server socket: one connection, calls matched to answers by id,
 * a deadline on every call, and a reconnect on the next call after the connection dropped. A
 * reconnect that meets a different server instance (the old one died) is reported, so the daemon
 * can mount again what the old instance served.
 */
import { createConnection, type Socket } from 'node:net';
import { messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { FrameDecoder, encodeFrame } from './frames.js';
import { PROTOCOL_VERSION, fromWireError, parseResponse, type Method, type Methods, type ServerEvent } from './protocol.js';

/** Options of `FuseServerClient`. */
export interface FuseServerClientOptions {
  address: string;
  log: Logger;
  /** Bound on connecting. Default 5 s. */
  connectTimeoutMs?: number;
  /** Called when a (re)connect meets a server instance other than the last one seen. */
  onNewInstance?: (instance: string, previous: string | undefined) => void;
  /** Called when an established connection drops (the server stopped or died). */
  onClose?: () => void;
  /** Called for each event the server sends unasked. */
  onEvent?: (e: ServerEvent) => void;
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

/** A connection to the FUSE server. */
export class FuseServerClient {
  readonly #o: FuseServerClientOptions;
  #sock: Socket | undefined;
  #connecting: Promise<Socket> | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #instance: string | undefined;
  #closed = false;

  constructor(o: FuseServerClientOptions) {
    this.#o = o;
  }

  /** The server instance last connected to. */
  get instance(): string | undefined {
    return this.#instance;
  }

  /** Call `method`; rejects with the server's ClipError, or `unavailable` on timeout or a lost connection. */
  async call<M extends Method>(method: M, params: Methods[M]['params'], deadlineMs: number): Promise<Methods[M]['result']> {
    const sock = await this.#connected();
    return this.#send(sock, method, params, deadlineMs);
  }

  /** Drop the connection; pending calls fail. */
  close(): void {
    this.#closed = true;
    this.#sock?.destroy();
  }

  #send<M extends Method>(sock: Socket, method: M, params: Methods[M]['params'], deadlineMs: number): Promise<Methods[M]['result']> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(unavailable('CLIP_FUSE_SERVER_TIMEOUT', `FUSE server call ${method} took over ${deadlineMs} ms`));
      }, deadlineMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      sock.write(encodeFrame({ id, method, params, deadlineMs }));
    });
  }

  #connected(): Promise<Socket> {
    if (this.#closed) return Promise.reject(unavailable('CLIP_FUSE_SERVER_UNREACHABLE', 'FUSE server client closed'));
    if (this.#sock && !this.#sock.destroyed) return Promise.resolve(this.#sock);
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  async #connect(): Promise<Socket> {
    const { address, log } = this.#o;
    const timeoutMs = this.#o.connectTimeoutMs ?? 5_000;
    const sock = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection(address);
      const timer = setTimeout(() => {
        s.destroy();
        reject(unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `FUSE server ${address}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `FUSE server ${address}: ${err.message}`, err));
      });
    });
    const decoder = new FrameDecoder();
    sock.on('data', (chunk: Buffer) => {
      try {
        for (const m of decoder.push(chunk)) this.#settle(m);
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'fuse server client: bad answer, dropping the connection');
        sock.destroy();
      }
    });
    sock.on('error', (err) => log.debug({ err: messageOf(err) }, 'fuse server client: connection error'));
    sock.once('close', () => {
      const wasCurrent = this.#sock === sock;
      if (wasCurrent) this.#sock = undefined;
      if (wasCurrent && !this.#closed) queueMicrotask(() => this.#o.onClose?.());
      for (const [id, p] of this.#pending) {
        clearTimeout(p.timer);
        this.#pending.delete(id);
        p.reject(unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `FUSE server ${address} closed the connection`));
      }
    });
    const hello = await this.#send(sock, 'hello', {}, timeoutMs).catch((err: unknown) => {
      sock.destroy();
      throw err;
    });
    if (hello.version !== PROTOCOL_VERSION) {
      sock.destroy();
      throw unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `FUSE server speaks protocol ${hello.version}, this daemon ${PROTOCOL_VERSION}`);
    }
    this.#sock = sock;
    const previous = this.#instance;
    this.#instance = hello.instance;
    log.info({ fuse_server: hello.instance, fuse_server_pid: hello.pid, reattached: previous === undefined ? undefined : previous === hello.instance }, 'connected to the FUSE server');
    if (previous !== hello.instance) this.#o.onNewInstance?.(hello.instance, previous);
    return sock;
  }

  #settle(m: unknown): void {
    const r = parseResponse(m);
    if ('event' in r) {
      this.#o.onEvent?.(r);
      return;
    }
    const p = this.#pending.get(r.id);
    if (!p) return; // answered after its deadline
    this.#pending.delete(r.id);
    clearTimeout(p.timer);
    if ('error' in r) p.reject(fromWireError(r.error));
    else p.resolve(r.result);
  }
}
