/**
 * `clip-snapshotter fuse-server`: the process that serves FUSE. It owns the read path (layer
 * store, index resolution, ContentCache, registry, prefetch, FUSE mounts), the status socket and
 * the metrics endpoint, and takes the daemon's calls on its socket. It keeps serving while the
 * daemon restarts; stopping it (SIGTERM) unmounts every layer. With `--take-over` it replaces a
 * running FUSE server instead, which hands it every mount and its /dev/fuse connection (kernel
 * driver; fuseserver/handover.ts), so running containers keep reading (README "State, restarts,
 * crashes"). Under systemd (`$NOTIFY_SOCKET`) it names itself the unit's main process once it
 * serves (fuseserver/service-notify.ts); on Kubernetes the old pod's server waits idle after
 * handing over (`--after-hand-over=wait`) until the kubelet stops it.
 */
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Config } from '../config/index.js';
import { findClipError, messageOf } from '../errors/index.js';
import { fuseServerHandlers, listenFuseServer, socketAnswers, type FuseServerSocket } from '../fuseserver/index.js';
import { HandoverSender, receiveHandover, type Received } from '../fuseserver/handover.js';
import { serviceNotifier } from '../fuseserver/service-notify.js';
import { createLogger, type Logger } from '../log/index.js';
import { recordFallback, startTelemetry } from '../telemetry/index.js';
import { serveStatus, statusSocketPath } from '../status/index.js';
import { fuseServerAddress } from './fuse-server-address.js';
import { openReadPath } from './read-path.js';

/** The pid file beside the FUSE server's socket (for operators and the test harness). */
export function fuseServerPidFile(cfg: Config): string {
  return join(dirname(fuseServerAddress(cfg)), 'fuse-server.pid');
}

/** `--take-over`: never (start fresh), required (fail without a running server), auto (either). */
export type TakeOverMode = 'never' | 'required' | 'auto';
/** `--after-hand-over`: exit at once (systemd), or wait idle until SIGTERM (a Kubernetes pod). */
export type AfterHandOver = 'exit' | 'wait';

/** How the FUSE server starts. */
export interface ServeFuseOptions {
  /**
   * Take the mounts of the FUSE server running on the same socket (hand-over), then serve.
   * `auto` takes over when a FUSE server answers on the socket and starts fresh otherwise.
   */
  takeOver?: TakeOverMode;
  /**
   * What this process does once it handed its mounts to a successor. `wait`: close every
   * connection and wait, holding no mount, socket or port, until SIGTERM/SIGINT, then exit 0 —
   * for a pod whose container must not exit (the kubelet would restart it).
   */
  afterHandOver?: AfterHandOver;
  /**
   * A file written (with this process's pid) once it serves and removed when it hands over or
   * stops: a readiness probe that tells this process from another on the same sockets.
   */
  readyFile?: string;
}

/** Run the FUSE server until SIGTERM/SIGINT, or until it hands its mounts to a successor. */
export async function serveFuse(cfg: Config, opts: ServeFuseOptions = {}): Promise<void> {
  const log = createLogger(cfg.logLevel).child({ process: 'fuse-server' });
  let handedOver: (() => void) | undefined;
  const notifier = serviceNotifier(log);
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
  // A file left by an earlier process of this pod (its pid may be reused) says nothing of this one.
  if (opts.readyFile !== undefined) await rm(opts.readyFile, { force: true });
  let received: Received | undefined;
  let takeOver = opts.takeOver ?? 'never';
  if (takeOver === 'auto') {
    // Nothing answers (first start, or the last server is gone and left a stale socket): start fresh.
    takeOver = (await socketAnswers(address)) ? 'required' : 'never';
    log.info({ address, take_over: takeOver === 'required' }, takeOver === 'required' ? 'take-over auto: a FUSE server answers; taking over' : 'take-over auto: no FUSE server answers; starting fresh');
  }
  if (takeOver === 'required') {
    const started = Date.now();
    try {
      received = await receiveHandover(address, log);
    } catch (err) {
      // The operator (or a reload's journal) learns why from the log, with the code.
      log.error({ err: messageOf(err), code: findClipError(err)?.code }, 'hand-over: taking over failed; exiting');
      throw err;
    }
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
  const readyFile = opts.readyFile;
  const afterHandOver = opts.afterHandOver ?? 'exit';
  // Set once the successor holds every connection: from then on a stop signal must not unmount.
  let committed: Promise<void> | undefined;
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
    let finished: () => void = () => undefined;
    committed = new Promise<void>((resolve) => (finished = resolve));
    if (readyFile !== undefined) await rm(readyFile, { force: true });
    await readPath.remote.releaseHandedOver();
    sock?.stopListening();
    await closeStatus?.().catch(() => undefined);
    await readPath.close(log).catch((err: unknown) => log.warn({ err: messageOf(err) }, 'hand-over: closing the read path failed'));
    await telemetry.shutdown().catch(() => undefined);
    sender.sendClosed();
    const listening = sender.waitListening();
    sender.close();
    // Waiting idle: the daemons' connections must close now (exiting would close them), so they
    // re-attach to the successor.
    if (afterHandOver === 'wait') await sock?.close();
    log.info({ successor_listening: listening, duration_ms: Date.now() - started, after_hand_over: afterHandOver }, 'hand-over: done');
    finished();
    handedOver?.();
    return { mounts: state.mounts.length };
  };
  try {
    sock = await listenFuseServer(address, fuseServerHandlers({ remote: readPath.remote, log, onFallback: (code) => recordFallback(code), onHandover: handover }), log);
    await writeFile(pidFile, `${process.pid}\n`, { mode: 0o644 });
    // Before the old server may exit: systemd must know the new main process first, else the old
    // one's exit is the unit's main process exiting (a stop, then a restart).
    notifier.ready(received ? `serving; took over ${received.mounts.length} mounts` : 'serving');
    // The old server waits for this once it closed everything, then exits.
    received?.ackListening();
  } finally {
    received?.close();
  }
  closeStatus = await serveStatus(statusSocketPath(cfg.address, cfg.statusAddress), { mounted: () => readPath.remote.mountedLayers(), store: readPath.store }, log);
  if (readyFile !== undefined) await writeFile(readyFile, `${process.pid}\n`, { mode: 0o644 });
  log.info({ address, pid: process.pid, took_over: received !== undefined }, 'FUSE server serving');
  const why = await stop;
  if (why === 'handover') return afterHandedOver(log, afterHandOver);
  if (committed !== undefined) {
    // A signal in the middle of a committed hand-over: the successor owns every mount; never unmount.
    log.info({ signal: why }, 'stop signal during a committed hand-over: finishing it, unmounting nothing');
    await committed;
    return afterHandedOver(log, 'exit');
  }
  log.info({ signal: why }, 'FUSE server shutting down');
  notifier.stopping();
  try {
    if (readyFile !== undefined) await rm(readyFile, { force: true });
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
// daemons' connections to this process, which re-attach to the successor. `wait` holds nothing
// (every connection closed in the hand-over) and leaves on SIGTERM/SIGINT, unmounting nothing.
async function afterHandedOver(log: Logger, mode: AfterHandOver): Promise<void> {
  if (mode === 'wait') {
    log.info('FUSE server handed over; waiting idle for SIGTERM (--after-hand-over=wait)');
    // Signal listeners keep no event loop alive, and this process holds nothing else any more.
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const signal = await new Promise<string>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    clearInterval(keepAlive);
    log.info({ signal }, 'FUSE server handed over earlier; exiting, unmounting nothing');
  } else {
    log.info('FUSE server handed over; exiting');
  }
  setImmediate(() => process.exit(0));
}
