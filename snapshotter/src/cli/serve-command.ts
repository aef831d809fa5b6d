/**
 * `clip-snapshotter serve`: the daemon until SIGTERM/SIGINT. Loaded only for `serve`: it reaches
 * gRPC and the metadata store (daemon.ts), which the FUSE server must not load (issue 15).
 */
import type { Config } from '../config/index.js';
import { messageOf } from '../errors/index.js';
import { createLogger } from '../log/index.js';
import { startTelemetry } from '../telemetry/index.js';
import { startDaemon } from './daemon.js';
import { fuseServerNodeArgs } from './node-flags.js';

/** Run the daemon until SIGTERM/SIGINT; `flagArgs` are its own flags, handed to a FUSE server it starts. */
export async function serve(cfg: Config, flagArgs: string[] = []): Promise<void> {
  const log = createLogger(cfg.logLevel);
  // Handlers first: a signal that arrives while the daemon is still starting (its socket may
  // already accept) must still lead to a clean stop, not the default kill.
  const signal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // Before anything else, so every span and instrument of the daemon reaches the providers.
  // With a separate FUSE server, that process owns the metrics endpoint (nearly every instrument
  // is on its read path); the daemon forwards its fallbacks there.
  const separate = cfg.fuseServer.mode === 'separate';
  const telemetry = await startTelemetry({ ...cfg.tracing, metricsAddress: separate ? '' : cfg.metrics.address }, log);
  const script = process.argv[1] ?? '';
  const daemon = await startDaemon(cfg, log, { command: process.execPath, args: [...fuseServerNodeArgs(process.execArgv, process.env['NODE_OPTIONS'], cfg.fuseServer.maxOldSpaceMb), script, 'fuse-server', ...flagArgs] });
  log.info({ address: cfg.address, root: cfg.root }, 'serving');
  log.info({ signal: await signal }, 'shutting down');
  try {
    await daemon.stop();
    await telemetry.shutdown();
    log.info('stopped');
  } catch (err) {
    log.error({ err: messageOf(err) }, 'unclean shutdown');
  }
}
