/**
 * The daemon's status endpoint: HTTP on a unix socket (mode 0600, like the gRPC socket), one
 * route: `GET /v1/layers[?image=REF]` → `{ layers: LayerStatus[] }`. Read-only, local only.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { dirname } from 'node:path';
import { messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { layerStatus, type StatusSources } from './layer-status.js';

/** Serve status on `path`; resolves to a function that closes it. */
export async function serveStatus(path: string, src: StatusSources, log: Logger): Promise<() => Promise<void>> {
  await mkdir(dirname(path), { recursive: true, mode: 0o711 });
  await rm(path, { force: true });
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://status');
    if (req.method !== 'GET' || url.pathname !== '/v1/layers') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found: GET /v1/layers[?image=REF]' }));
      return;
    }
    const image = url.searchParams.get('image') ?? undefined;
    layerStatus(src, image).then(
      (layers) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ layers })),
      (err: unknown) => {
        log.warn({ err: messageOf(err) }, 'status request failed');
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: messageOf(err) }));
      },
    );
  });
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(unavailable('CLIP_STATUS_LISTEN', `status socket ${path}: ${err.message}`, err)));
      server.listen(path, resolve);
    });
  } finally {
    process.umask(old);
  }
  await chmod(path, 0o600);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
