/**
 * Handing a running FUSE server's connections to its successor (a new build), while containers
 * read. The successor listens on a SOCK_SEQPACKET socket beside the FUSE server socket and asks
 * the running server (`handover` over the ordinary socket) to connect to it; the running server
 * stops reading its /dev/fuse descriptors, finishes the replies in flight, and sends one message
 * per mount — its state as JSON, its descriptor attached (SCM_RIGHTS) — then `end`. It then closes
 * everything that the successor must open itself (its socket, status socket, layer store, CRI
 * proxy, metrics endpoint) and sends `closed`; the successor opens them, adopts the mounts,
 * listens, and answers `listening`, after which the old server exits. Requests that reach the
 * kernel meanwhile wait in its queue and are answered by the successor.
 *
 * The seqpacket calls block the event loop (with deadlines): they run only in the hand-over,
 * when neither process serves anything.
 */
import { closeSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { messageOf, unavailable } from '../errors/index.js';
import { fusedev } from '../fuse/kernel/addon.js';
import type { Logger } from '../log/index.js';
import type { HandoverMount } from '../remote/index.js';
import { FrameDecoder, encodeFrame } from './frames.js';
import { parseResponse } from './protocol.js';

const MAX_MESSAGE_BYTES = 64 * 1024;
const STEP_TIMEOUT_MS = 30_000;
/** The old server closes its store, registry clients and sockets before `closed`. */
const CLOSE_TIMEOUT_MS = 120_000;

type Message =
  | { type: 'mount'; mount: HandoverMount }
  | { type: 'end'; count: number }
  | { type: 'closed' }
  | { type: 'listening' };

/** Where a successor listens for the hand-over. */
export function handoverPath(address: string): string {
  return `${address}.takeover`;
}

/** Old side: a connection to the successor. */
export class HandoverSender {
  readonly #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Connect to a successor listening at `path`. */
  static connect(path: string): HandoverSender {
    try {
      return new HandoverSender(fusedev().seqConnect(path));
    } catch (err) {
      throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `connect to the new FUSE server at ${path}: ${messageOf(err)}`, err);
    }
  }

  /** Every mount with its descriptor (-1: none), then `end`. */
  sendMounts(mounts: readonly HandoverMount[], fds: readonly number[]): void {
    mounts.forEach((mount, i) => this.#send({ type: 'mount', mount }, (fds[i] ?? -1) >= 0 ? [fds[i] as number] : []));
    this.#send({ type: 'end', count: mounts.length }, []);
  }

  /** Everything the successor opens itself is closed here. */
  sendClosed(): void {
    this.#send({ type: 'closed' }, []);
  }

  /** Wait until the successor listens (true), or gave up / died (false). */
  waitListening(timeoutMs = CLOSE_TIMEOUT_MS): boolean {
    try {
      const m = recv(this.#fd, timeoutMs);
      return m?.type === 'listening';
    } catch {
      return false;
    }
  }

  close(): void {
    closeQuietly(this.#fd);
  }

  #send(m: Message, fds: number[]): void {
    try {
      fusedev().seqSend(this.#fd, Buffer.from(JSON.stringify(m)), fds, STEP_TIMEOUT_MS);
    } catch (err) {
      throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `send ${m.type} to the new FUSE server: ${messageOf(err)}`, err);
    }
  }
}

/** What the successor received. */
export interface Received {
  mounts: HandoverMount[];
  fds: number[];
  /** Tell the old server the successor listens (it exits then). */
  ackListening(): void;
  /** Close the descriptors not adopted and the hand-over socket. */
  close(): void;
}

/**
 * Successor side: ask the FUSE server on `address` to hand over, receive every mount and wait
 * until it closed what the successor opens. Throws CLIP_FUSE_HANDOVER_FAILED (closing whatever
 * descriptors arrived) when the old server refuses, fails or dies before `closed`.
 */
export async function receiveHandover(address: string, log: Logger): Promise<Received> {
  const native = fusedev();
  const path = handoverPath(address);
  await rm(path, { force: true });
  const listenFd = native.seqListen(path);
  await chmod(path, 0o600);
  const fds: number[] = [];
  let conn = -1;
  let refused: string | undefined;
  const ask = createConnection(address);
  try {
    await new Promise<void>((resolve, reject) => {
      ask.once('error', (err) => reject(unavailable('CLIP_FUSE_HANDOVER_FAILED', `no FUSE server to take over on ${address}: ${err.message}`, err)));
      ask.once('connect', () => ask.write(encodeFrame({ id: 1, method: 'handover', params: { path }, deadlineMs: CLOSE_TIMEOUT_MS }), () => resolve()));
    });
    log.info({ address, path }, 'hand-over: asked the running FUSE server');
    // An answer before the old server connects is a refusal (e.g. libfuse-driver mounts).
    const decoder = new FrameDecoder();
    ask.on('data', (chunk: Buffer) => {
      try {
        for (const r of decoder.push(chunk)) {
          const a = parseResponse(r);
          if ('error' in a) refused = `${a.error.code}: ${a.error.message.slice(0, 500)}`;
        }
      } catch (err) {
        refused = messageOf(err);
      }
    });
    const deadline = Date.now() + STEP_TIMEOUT_MS;
    while (conn < 0) {
      if (refused !== undefined) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `the running FUSE server refused the hand-over: ${refused}`);
      if (Date.now() > deadline) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `the running FUSE server did not connect within ${STEP_TIMEOUT_MS} ms`);
      try {
        conn = native.seqAccept(listenFd, 100);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw err;
        // Let the answer on the ordinary socket arrive.
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    const mounts: HandoverMount[] = [];
    for (;;) {
      const m = recv(conn, STEP_TIMEOUT_MS, fds);
      if (m === undefined) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `the old FUSE server went away after ${mounts.length} mounts`);
      if (m.type === 'end') {
        if (m.count !== mounts.length) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `hand-over ended after ${mounts.length} of ${m.count} mounts`);
        break;
      }
      if (m.type !== 'mount') throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `unexpected hand-over message ${m.type}`);
      mounts.push(m.mount);
      if (m.mount.negotiated === undefined) fds.push(-1);
    }
    log.info({ mounts: mounts.length, descriptors: fds.filter((f) => f >= 0).length }, 'hand-over: mounts received; waiting for the old FUSE server to close');
    const closed = recv(conn, CLOSE_TIMEOUT_MS);
    // Gone after sending every mount (killed): what it held is closed by its death; take over.
    if (closed === undefined) log.warn('hand-over: the old FUSE server went away after sending every mount; taking over');
    else if (closed.type !== 'closed') throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `unexpected hand-over message ${closed.type}`);
    const c = conn;
    return {
      mounts,
      fds,
      ackListening: () => {
        try {
          native.seqSend(c, Buffer.from(JSON.stringify({ type: 'listening' } satisfies Message)), [], STEP_TIMEOUT_MS);
        } catch (err) {
          log.warn({ err: messageOf(err) }, 'hand-over: the old FUSE server did not take the last message');
        }
      },
      close: () => {
        closeQuietly(c);
        closeQuietly(listenFd);
        void rm(path, { force: true });
      },
    };
  } catch (err) {
    for (const fd of fds) if (fd >= 0) closeQuietly(fd);
    if (conn >= 0) closeQuietly(conn);
    closeQuietly(listenFd);
    await rm(path, { force: true });
    throw err;
  } finally {
    ask.destroy();
  }
}

/** One message, its descriptors appended to `fds`; undefined at end of stream. */
function recv(fd: number, timeoutMs: number, fds?: number[]): Message | undefined {
  const got = fusedev().seqRecv(fd, MAX_MESSAGE_BYTES, timeoutMs);
  if (got === null) return undefined;
  if (fds) fds.push(...got.fds);
  else for (const f of got.fds) closeQuietly(f);
  let m: unknown;
  try {
    m = JSON.parse(got.data.toString('utf8'));
  } catch {
    throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'hand-over message is not JSON');
  }
  return checkMessage(m, got.fds.length);
}

function checkMessage(v: unknown, fdCount: number): Message {
  const m = v as { type?: unknown; mount?: Partial<HandoverMount>; count?: unknown } | null;
  if (typeof m !== 'object' || m === null) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'hand-over message is not an object');
  if (m.type === 'end') {
    if (!Number.isInteger(m.count)) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'hand-over end has no count');
    return { type: 'end', count: m.count as number };
  }
  if (m.type === 'closed' || m.type === 'listening') return { type: m.type };
  if (m.type !== 'mount') throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `unknown hand-over message ${String(m.type).slice(0, 40)}`);
  const x = m.mount;
  const n = x?.negotiated;
  const ok = typeof x === 'object' && x !== null && typeof x.mountpoint === 'string' && x.mountpoint.startsWith('/') &&
    typeof x.layer?.digest === 'string' && typeof x.layer.ref === 'string' && typeof x.layer.diffId === 'string' &&
    typeof x.indexDigest === 'string' && /^[0-9a-f]{64}$/.test(x.indexDigest) && typeof x.trusted === 'boolean' &&
    (x.mappedFrom === undefined || (typeof x.mappedFrom === 'string' && Array.isArray(x.uids) && Array.isArray(x.gids))) &&
    (n === undefined || [n.major, n.minor, n.flags, n.maxReadahead, n.maxWrite, n.maxPages].every((k) => Number.isInteger(k) && (k as number) >= 0));
  if (!ok) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'hand-over mount message is malformed');
  if (fdCount !== (n === undefined ? 0 : 1)) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `hand-over mount ${x.mountpoint} came with ${fdCount} descriptors`);
  return { type: 'mount', mount: x as HandoverMount };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}
