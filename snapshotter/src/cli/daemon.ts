/**
 * Assembling the daemon from its config: the snapshotter and its gRPC server, over lazy layers
 * served either by a separate FUSE server (`[fuse_server] mode = "separate"`, the default: FUSE
 * mounts outlive the daemon) or by the read path inside this process (`in_process`).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Config } from '../config/index.js';
import { messageOf } from '../errors/index.js';
import { FuseServerClient, SocketRemoteLayers, ensureFuseServer, socketAnswers } from '../fuseserver/index.js';
import type { Logger } from '../log/index.js';
import { serveSnapshots, stopServer } from '../service/index.js';
import { Snapshotter, type RemoteLayers } from '../snapshots/index.js';
import { StartTraces, recordFallback } from '../telemetry/index.js';
import { statusSocketPath } from '../status/socket-path.js';
import { fuseServerAddress } from './fuse-server-address.js';
import type { ReadPath } from './read-path.js';

export { fuseServerAddress };

/** Everything a running daemon owns, in shutdown order. */
export interface Daemon {
  server: grpc.Server;
  snapshotter: Snapshotter;
  remote: RemoteLayers;
  /** The read path, when this process serves FUSE itself (`in_process`). */
  readPath: ReadPath | undefined;
  /** The status endpoint's unix socket (`clip-snapshotter status`), served here or by the FUSE server. */
  statusAddress: string;
  stop(): Promise<void>;
}

/** How the daemon starts a FUSE server when none answers. */
export interface FuseServerCommand {
  command: string;
  args: string[];
}

/** Start the daemon: open state, re-attach to (or re-mount) lazy layers in the background, serve. */
export async function startDaemon(cfg: Config, log: Logger, fuseServer?: FuseServerCommand): Promise<Daemon> {
  return cfg.fuseServer.mode === 'in_process' ? startInProcess(cfg, log) : startSeparate(cfg, log, fuseServer);
}

async function startInProcess(cfg: Config, log: Logger): Promise<Daemon> {
  // Loaded only here: the read path (registry, ContentCache, FUSE, index code) is most of the
  // daemon's code, and in the split mode it lives in the FUSE server, not in this process.
  const [{ openReadPath }, { serveStatus }] = await Promise.all([import('./read-path.js'), import('../status/index.js')]);
  let snapshotterRef: Snapshotter | undefined;
  // A layer just extracted: its FUSE mount may retire if no container reads through it.
  const readPath = await openReadPath(cfg, log, () => void snapshotterRef?.retireIdle());
  const snapshotter = await Snapshotter.open({ root: cfg.root, remote: readPath.remote, log, onFallback: (code) => recordFallback(code) });
  snapshotterRef = snapshotter;
  restoreInBackground(snapshotter, log);
  const server = await serveSnapshots(snapshotter, cfg.address, log, readPath.starts);
  const statusAddress = statusSocketPath(cfg.address, cfg.statusAddress);
  const closeStatus = await serveStatus(statusAddress, { mounted: () => readPath.remote.mountedLayers(), store: readPath.store }, log);
  const stop = async (): Promise<void> => {
    await stopServer(server);
    await closeStatus();
    await readPath.close(log);
    snapshotter.close();
  };
  return { server, snapshotter, remote: readPath.remote, readPath, statusAddress, stop };
}

async function startSeparate(cfg: Config, log: Logger, command: FuseServerCommand | undefined): Promise<Daemon> {
  const address = fuseServerAddress(cfg);
  // One start at a time: a Prepare and the re-attach loop that both find the server gone would
  // otherwise each spawn one, and the second exits ("another FUSE server answers").
  let starting: Promise<number | undefined> | undefined;
  const ensure = (): Promise<number | undefined> => {
    starting ??= ensureFuseServer({ address, spawn: cfg.fuseServer.spawn && command !== undefined, command: command?.command ?? '', args: command?.args ?? [], log }).finally(
      () => (starting = undefined),
    );
    return starting;
  };
  let snapshotter: Snapshotter | undefined;
  let stopping = false;
  const client = new FuseServerClient({
    address,
    log,
    // A new instance after the first: the old FUSE server died and its mounts with it.
    onNewInstance: (_instance, previous) => {
      if (previous !== undefined && snapshotter) restoreInBackground(snapshotter, log);
    },
    onClose: () => {
      if (!stopping) void reattach();
    },
    // A layer extracted in the FUSE server: its FUSE mount may retire if no container reads through it.
    onEvent: () => void snapshotter?.retireIdle(),
  });
  // Started at start, in the background (below), and by the first mount if it is not up by then.
  const remote = new SocketRemoteLayers(client, {}, {
    answers: () => socketAnswers(address),
    ensure: async () => {
      await ensure();
    },
  });
  // Re-attach at once when the FUSE server goes away, so its layers come back before anyone asks.
  const reattach = async (): Promise<void> => {
    for (let delay = 100; !stopping; delay = Math.min(delay * 2, 5_000)) {
      try {
        await ensure();
        await remote.served();
        return;
      } catch (err) {
        log.warn({ err: messageOf(err) }, 'FUSE server not back yet');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
  snapshotter = await Snapshotter.open({
    root: cfg.root,
    remote,
    log,
    onFallback: (code) => {
      remote.recordFallback(code).catch((err: unknown) => log.debug({ err: messageOf(err) }, 'fallback not counted'));
    },
  });
  restoreInBackground(snapshotter, log);
  // Start traces of RPCs only: the reads they would join happen in the FUSE server.
  const starts = new StartTraces({ idleMs: cfg.tracing.startTraceIdleMs, maxMs: cfg.tracing.startTraceMaxMs });
  // The CRI image-service proxy lives in the FUSE server, where the registry is read: it must
  // listen before the kubelet's first pull, not from the first lazy mount on.
  if (cfg.cri.enabled) {
    await ensure().catch((err: unknown) => {
      log.warn({ err: messageOf(err) }, 'FUSE server (and its CRI proxy) not up yet; retrying in the background');
      void reattach();
    });
  }
  const server = await serveSnapshots(snapshotter, cfg.address, log, starts);
  // Not left to the first lazy mount: that Prepare would wait for a Node process to start, open its
  // read path and answer the 100 ms socket poll (0.5-0.9 s of a cold node's first pull, issue 15).
  // Spawned ones only: a FUSE server run by a service manager starts on its own.
  if (!cfg.cri.enabled && cfg.fuseServer.spawn && cfg.fuseServer.start === 'with_daemon' && command !== undefined) {
    void ensure().then(() => remote.served()).then(
      () => log.debug({ address }, 'FUSE server up ahead of the first mount'),
      (err: unknown) => log.warn({ err: messageOf(err) }, 'FUSE server not started ahead of the first mount; the first mount starts it'),
    );
  }
  const stop = async (): Promise<void> => {
    stopping = true;
    await stopServer(server);
    starts.closeAll();
    // The FUSE server keeps serving every mounted layer: containers never see the daemon stop.
    client.close();
    snapshotter?.close();
  };
  return { server, snapshotter, remote, readPath: undefined, statusAddress: statusSocketPath(cfg.address, cfg.statusAddress), stop };
}

function restoreInBackground(snapshotter: Snapshotter, log: Logger): void {
  snapshotter.restoreRemote().then(
    (r) => log.info({ mounted: r.mounted, kept: r.kept, failed: r.failed }, 'lazy layers restored'),
    (err: unknown) => log.error({ err: messageOf(err) }, 'restoring lazy layers failed'),
  );
}
