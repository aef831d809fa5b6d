/**
 * The FUSE server's socket: accepts the daemon's connections, decodes requests, runs them against
 * the read path's RemoteLayers and answers each with its id. One socket, mode 0600; a second
 * server refuses to start while one answers on it.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { failedPrecondition, findClipError, invalidArgument, messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { FrameDecoder, encodeFrame } from './frames.js';
import { parseRequest, toWireError, type Method, type Methods, type Request, type ServerEvent } from './protocol.js';

/** What each method does; the server only frames, checks envelopes and answers. */
export type Handlers = { [M in Method]: (params: object) => Promise<Methods[M]['result']> };

/** A listening FUSE server socket. */
export interface FuseServerSocket {
  /** Send an event to every connected daemon. */
  broadcast(e: ServerEvent): void;
  /**
   * Stop listening (the socket path is removed) but keep the daemons' connections: they close
   * when this process exits, by which time a successor listens (hand-over).
   */
  stopListening(): void;
  close(): Promise<void>;
}

/** True when something accepts connections on the unix socket `path`. */
export function socketAnswers(path: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(true);
    });
    s.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** Listen on `path` and serve `handlers` until closed. */
export async function listenFuseServer(path: string, handlers: Handlers, log: Logger): Promise<FuseServerSocket> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  if (await socketAnswers(path)) throw failedPrecondition('CLIP_FUSE_SERVER_RUNNING', `another FUSE server answers on ${path}`);
  await rm(path, { force: true });
  const conns = new Set<Socket>();
  const server: Server = createServer((sock) => {
    conns.add(sock);
    sock.once('close', () => conns.delete(sock));
    serveConnection(sock, handlers, log);
  });
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `FUSE server socket ${path}: ${err.message}`, err)));
      server.listen(path, resolve);
    });
  } finally {
    process.umask(old);
  }
  await chmod(path, 0o600);
  return {
    broadcast: (e) => {
      const frame = encodeFrame(e);
      for (const c of conns) if (!c.destroyed) c.write(frame);
    },
    stopListening: () => {
      server.close();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of conns) c.destroy();
        server.close(() => resolve());
      }),
  };
}

function serveConnection(sock: Socket, handlers: Handlers, log: Logger): void {
  const decoder = new FrameDecoder();
  const answer = (msg: unknown): void => {
    if (!sock.destroyed) sock.write(encodeFrame(msg));
  };
  sock.on('data', (chunk: Buffer) => {
    let messages: unknown[];
    try {
      messages = decoder.push(chunk);
    } catch (err) {
      log.warn({ err: messageOf(err) }, 'fuse server: bad frame, closing the connection');
      sock.destroy();
      return;
    }
    for (const m of messages) {
      let req: Request;
      try {
        req = parseRequest(m);
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'fuse server: bad request, closing the connection');
        sock.destroy();
        return;
      }
      void run(req, handlers).then(
        (result) => answer({ id: req.id, result }),
        (err: unknown) => {
          if (findClipError(err) === undefined) log.warn({ method: req.method, err: messageOf(err) }, 'fuse server: call failed');
          answer({ id: req.id, error: toWireError(err) });
        },
      );
    }
  });
  sock.on('error', (err) => log.debug({ err: messageOf(err) }, 'fuse server: connection error'));
}

async function run(req: Request, handlers: Handlers): Promise<unknown> {
  const h = Object.hasOwn(handlers, req.method) ? handlers[req.method] : undefined;
  if (!h) throw invalidArgument('CLIP_FUSE_SERVER_UNKNOWN_METHOD', `FUSE server has no method "${String(req.method).slice(0, 64)}"`);
  return h(req.params);
}
