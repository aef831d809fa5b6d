/**
 * `clip-snapshotter fuse-server`: the process that serves FUSE. It owns the read path (layer
 * store, index resolution, ContentCache, registry, prefetch, FUSE mounts), the status socket and
 * the metrics endpoint, and takes the daemon's calls on its socket. It keeps serving while the
 * daemon restarts; stopping it (SIGTERM) unmounts every layer, so only an upgrade of this process
 * itself does that (README "State, restarts, crashes").
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Config } from '../config/index.js';
import { messageOf } from '../errors/index.js';
import { fuseServerHandlers, listenFuseServer, type FuseServerSocket } from '../fuseserver/index.js';
import { createLogger } from '../log/index.js';
import { recordFallback, startTelemetry } from '../telemetry/index.js';
import { serveStatus, statusSocketPath } from '../status/index.js';
import { fuseServerAddress } from './daemon.js';
import { openReadPath } from './read-path.js';

/** The pid file beside the FUSE server's socket (for operators and the test harness). */
export function fuseServerPidFile(cfg: Config): string {
  return join(dirname(fuseServerAddress(cfg)), 'fuse-server.pid');
}

/** Run the FUSE server until SIGTERM/SIGINT. */
export async function serveFuse(cfg: Config): Promise<void> {
  const log = createLogger(cfg.logLevel).child({ process: 'fuse-server' });
  const signal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // The daemon's process group may be signalled as a whole (a terminal's ^C, a service manager's
  // group kill); this process left it at spawn (setsid), and SIGHUP of a closing session is ignored.
  process.on('SIGHUP', () => log.info('SIGHUP ignored'));
  const telemetry = await startTelemetry({ ...cfg.tracing, metricsAddress: cfg.metrics.address }, log);
  let sock: FuseServerSocket | undefined;
  // A layer just extracted: the daemon may retire FUSE mounts no container reads through.
  const readPath = await openReadPath(cfg, log, (mountpoint) => sock?.broadcast({ id: 0, event: 'extracted', mountpoint }));
  const address = fuseServerAddress(cfg);
  sock = await listenFuseServer(address, fuseServerHandlers({ remote: readPath.remote, log, onFallback: (code) => recordFallback(code) }), log);
  const pidFile = fuseServerPidFile(cfg);
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o644 });
  const closeStatus = await serveStatus(statusSocketPath(cfg.address, cfg.statusAddress), { mounted: () => readPath.remote.mountedLayers(), store: readPath.store }, log);
  log.info({ address, pid: process.pid }, 'FUSE server serving');
  log.info({ signal: await signal }, 'FUSE server shutting down');
  try {
    await sock.close();
    await closeStatus();
    await readPath.close(log);
    await rm(pidFile, { force: true });
    await telemetry.shutdown();
    log.info('FUSE server stopped');
  } catch (err) {
    log.error({ err: messageOf(err) }, 'unclean shutdown');
  }
}
