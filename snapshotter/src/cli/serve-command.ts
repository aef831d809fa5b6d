import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../config/index.js';
import { invalidArgument, messageOf } from '../errors/index.js';
import { LOG_LEVELS, createLogger } from '../log/index.js';
import { startTelemetry } from '../telemetry/index.js';
import { startDaemon } from './daemon.js';
import { fuseServerNodeArgs } from './node-flags.js';

/** Flags of `serve` that override the config file. */
export interface ServeFlags {
  config?: string | undefined;
  root?: string | undefined;
  address?: string | undefined;
  logLevel?: string | undefined;
}

/** Merge defaults, the config file and flags, in that order. */
export async function resolveServeConfig(flags: ServeFlags): Promise<Config> {
  const cfg = await loadConfig(flags.config ?? DEFAULT_CONFIG_PATH, flags.config === undefined);
  if (flags.root) cfg.root = flags.root;
  if (flags.address) cfg.address = flags.address;
  if (flags.logLevel) {
    if (!(LOG_LEVELS as readonly string[]).includes(flags.logLevel)) {
      throw invalidArgument('CLIP_FLAG_LOG_LEVEL', `--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${flags.logLevel}"`);
    }
    cfg.logLevel = flags.logLevel as Config['logLevel'];
  }
  for (const [flag, value] of [['--root', flags.root], ['--address', flags.address]] as const) {
    if (value !== undefined && !value.startsWith('/')) throw invalidArgument('CLIP_FLAG_PATH', `${flag} must be an absolute path, got "${value}"`);
  }
  return cfg;
}

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
  const daemon = await startDaemon(cfg, log, { command: process.execPath, args: [...fuseServerNodeArgs(process.execArgv, process.env['NODE_OPTIONS']), script, 'fuse-server', ...flagArgs] });
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
