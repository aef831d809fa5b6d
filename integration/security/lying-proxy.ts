/**
 * A registry that lies about ranges, for the security tests: an HTTP proxy in front of a real
 * registry that forwards everything unchanged, except that a Range GET of one chosen blob gets the
 * true 206 body followed by junk that never ends (no Content-Length), until the client hangs up;
 * or (`trickle`) every GET of one chosen blob, Range or whole, gets its true headers and then one
 * byte of its body per second.
 */
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LyingProxy {
  /** `127.0.0.1:PORT` */
  hostPort: string;
  /** Digest of the blob whose Range answers get an endless surplus. */
  lieAbout(digest: string | undefined): void;
  /** Digest of the blob whose GETs trickle at one byte per second (undefined: none). */
  trickle(digest: string | undefined): void;
  /** Surplus bytes written so far, and how many ranges were lied about. */
  readonly surplusBytes: number;
  readonly lies: number;
  /** GETs answered by trickling, and those whose client hung up before the body was done. */
  readonly trickled: number;
  readonly abandoned: number;
  close(): Promise<void>;
}

const JUNK = Buffer.alloc(64 * 1024, 0x5a);
/** Even an unprotected client stops the proxy somewhere; far beyond what a bounded reader accepts. */
const MAX_SURPLUS = 512 * 1024 * 1024;

/** Start the proxy on a free loopback port in front of `upstream` (`127.0.0.1:PORT`). */
export async function startLyingProxy(upstream: string): Promise<LyingProxy> {
  const [upHost, upPort] = upstream.split(':') as [string, string];
  let target: string | undefined;
  let surplusBytes = 0;
  let lies = 0;
  let slow: string | undefined;
  let trickled = 0;
  let abandoned = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // Requests through a hosts.toml mirror carry `?ns=<registry>`.
    const path = (req.url ?? '').split('?')[0] ?? '';
    if (slow !== undefined && req.method === 'GET' && path.endsWith(`/blobs/${slow}`)) {
      trickled++;
      return void trickleResponse(upHost, Number(upPort), req, res, () => abandoned++);
    }
    const lie = target !== undefined && req.method === 'GET' && req.headers.range !== undefined && path.endsWith(`/blobs/${target}`);
    const up = request({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      const headers = { ...upRes.headers };
      if (lie && upRes.statusCode === 206) delete headers['content-length'];
      res.writeHead(upRes.statusCode ?? 502, headers);
      if (!(lie && upRes.statusCode === 206)) return void upRes.pipe(res);
      lies++;
      upRes.on('data', (chunk: Buffer) => res.write(chunk));
      upRes.on('end', () => {
        const more = (): void => {
          if (res.destroyed || surplusBytes >= MAX_SURPLUS) return void res.end();
          surplusBytes += JUNK.length;
          if (res.write(JUNK)) setImmediate(more);
          else res.once('drain', more);
        };
        more();
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    hostPort: `127.0.0.1:${port}`,
    lieAbout: (d) => void (target = d),
    trickle: (d) => void (slow = d),
    get trickled() { return trickled; },
    get abandoned() { return abandoned; },
    get surplusBytes() { return surplusBytes; },
    get lies() { return lies; },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Forward `req`, then send the upstream body to the client one byte per second until it hangs up. */
function trickleResponse(host: string, port: number, req: IncomingMessage, res: ServerResponse, onAbandoned: () => void): void {
  const up = request({ host, port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, upRes.headers);
    const parts: Buffer[] = [];
    upRes.on('data', (chunk: Buffer) => parts.push(chunk));
    upRes.on('end', () => {
      const body = Buffer.concat(parts);
      let sent = 0;
      const timer = setInterval(() => {
        if (sent >= body.length) {
          clearInterval(timer);
          return void res.end();
        }
        res.write(body.subarray(sent, ++sent));
      }, 1_000);
      res.on('close', () => {
        clearInterval(timer);
        if (sent < body.length) onAbandoned();
      });
    });
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}
