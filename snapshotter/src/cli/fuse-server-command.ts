/**
 * `clip-snapshotter fuse-server`: the process that serves FUSE. It owns the read path (layer
 * store, index resolution, ContentCache, registry, prefetch, FUSE mounts), the status socket and
 * the metrics endpoint, and takes the daemon's calls on its socket. It keeps serving while the
 * daemon restarts; stopping it (SIGTERM) unmounts every layer. With `--take-over` it replaces a
 * running FUSE server instead, which hands it every mount and its /dev/fuse connection (kernel
 * driver; fuseserver/handover.ts), so running containers keep reading (README "State, restarts,
 * crashes").
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Config } from '../config/index.js';
import { findClipError, messageOf } from '../errors/index.js';
import { fuseServerHandlers, listenFuseServer, type FuseServerSocket } from '../fuseserver/index.js';
import { HandoverSender, receiveHandover, type Received } from '../fuseserver/handover.js';
import { createLogger, type Logger } from '../log/index.js';
import { recordFallback, startTelemetry } from '../telemetry/index.js';
import { serveStatus, statusSocketPath } from '../status/index.js';
import { fuseServerAddress } from './daemon.js';
import { openReadPath } from './read-path.js';

/** The pid file beside the FUSE server's socket (for operators and the test harness). */
export function fuseServerPidFile(cfg: Config): string {
  return join(dirname(fuseServerAddress(cfg)), 'fuse-server.pid');
}

/** How the FUSE server starts. */
export interface ServeFuseOptions {
  /** Take the mounts of the FUSE server running on the same socket (hand-over), then serve. */
  takeOver?: boolean;
}

/** Run the FUSE server until SIGTERM/SIGINT, or until it hands its mounts to a successor. */
export async function serveFuse(cfg: Config, opts: ServeFuseOptions = {}): Promise<void> {
  const log = createLogger(cfg.logLevel).child({ process: 'fuse-server' });
  let handedOver: (() => void) | undefined;
  const stop = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
    handedOver = () => resolve('handover');
  });
  // The daemon's process group may be signalled as a whole (a terminal's ^C, a service manager's
  // group kill); this process left it at spawn (setsid), and SIGHUP of a closing session is ignored.
  process.on('SIGHUP', () => log.info('SIGHUP ignored'));
  const address = fuseServerAddress(cfg);
  // Taking over: the old server's mounts, descriptors and closed resources come first; everything
  // below (telemetry's metrics port, the store, the sockets) is opened only after it closed them.
  let received: Received | undefined;
  if (opts.takeOver) {
    const started = Date.now();
    received = await receiveHandover(address, log);
    log.info({ mounts: received.mounts.length, duration_ms: Date.now() - started }, 'hand-over: the old FUSE server closed; taking over');
  }
  const telemetry = await startTelemetry({ ...cfg.tracing, metricsAddress: cfg.metrics.address }, log);
  let sock: FuseServerSocket | undefined;
  // A layer just extracted: the daemon may retire FUSE mounts no container reads through.
  const readPath = await openReadPath(cfg, log, (mountpoint) => sock?.broadcast({ id: 0, event: 'extracted', mountpoint }));
  if (received) {
    const adopted = await readPath.remote.adopt(received.mounts, received.fds, log);
    log.info({ mounts: received.mounts.length, adopted: adopted.length }, 'hand-over: mounts adopted');
  }
  let closeStatus: (() => Promise<void>) | undefined;
  const pidFile = fuseServerPidFile(cfg);
  const handover = async (path: string): Promise<{ mounts: number }> => {
    const started = Date.now();
    const state = await readPath.remote.handOver();
    let sender: HandoverSender;
    try {
      sender = HandoverSender.connect(path);
      sender.sendMounts(state.mounts, state.fds);
    } catch (err) {
      readPath.remote.resumeServing();
      log.error({ err: messageOf(err), code: findClipError(err)?.code }, 'hand-over failed; serving on');
      throw err;
    }
    // Committed: the successor holds every connection. Close what it must open itself.
    log.info({ mounts: state.mounts.length, paused_ms: Date.now() - started }, 'hand-over: mounts sent; closing');
    await readPath.remote.releaseHandedOver();
    sock?.stopListening();
    await closeStatus?.().catch(() => undefined);
    await readPath.close(log).catch((err: unknown) => log.warn({ err: messageOf(err) }, 'hand-over: closing the read path failed'));
    await telemetry.shutdown().catch(() => undefined);
    sender.sendClosed();
    const listening = sender.waitListening();
    sender.close();
    log.info({ successor_listening: listening, duration_ms: Date.now() - started }, 'hand-over: done; exiting');
    handedOver?.();
    return { mounts: state.mounts.length };
  };
  try {
    sock = await listenFuseServer(address, fuseServerHandlers({ remote: readPath.remote, log, onFallback: (code) => recordFallback(code), onHandover: handover }), log);
    // The old server waits for this once it closed everything, then exits.
    received?.ackListening();
  } finally {
    received?.close();
  }
  await writeFile(pidFile, `${process.pid}\n`, { mode: 0o644 });
  closeStatus = await serveStatus(statusSocketPath(cfg.address, cfg.statusAddress), { mounted: () => readPath.remote.mountedLayers(), store: readPath.store }, log);
  log.info({ address, pid: process.pid, took_over: received !== undefined }, 'FUSE server serving');
  const why = await stop;
  if (why === 'handover') return exitAfterHandover(log);
  log.info({ signal: why }, 'FUSE server shutting down');
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

// The successor owns the pid file, the sockets and the mounts now; leaving by exit closes the
// daemons' connections to this process, which re-attach to the successor.
function exitAfterHandover(log: Logger): void {
  log.info('FUSE server handed over');
  setImmediate(() => process.exit(0));
}
