/**
 * Where the FUSE server listens. Its own module: the FUSE server needs the address but none of the
 * daemon's modules (gRPC service, metadata store), which `daemon.ts` loads.
 */
import { dirname, join } from 'node:path';
import type { Config } from '../config/index.js';

/** The FUSE server's socket: `[fuse_server] address`, or `fuse.sock` beside the daemon's socket. */
export function fuseServerAddress(cfg: Config): string {
  return cfg.fuseServer.address !== '' ? cfg.fuseServer.address : join(dirname(cfg.address), 'fuse.sock');
}
