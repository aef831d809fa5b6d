import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../config/index.js';
import { createLogger, type Logger } from '../log/index.js';
import { serveSnapshots, stopServer } from '../service/index.js';
import { Snapshotter } from '../snapshots/index.js';
import { messageOf } from '../errors/index.js';

/** Flags of `serve` that override the config file. */
export interface ServeFlags {
  config?: string;
  root?: string;
  address?: string;
  logLevel?: string;
}

/** Merge defaults, the config file and flags, in that order. */
export async function resolveServeConfig(flags: ServeFlags): Promise<Config> {
  const cfg = await loadConfig(flags.config ?? DEFAULT_CONFIG_PATH, flags.config === undefined);
  if (flags.root) cfg.root = flags.root;
  if (flags.address) cfg.address = flags.address;
  if (flags.logLevel) cfg.logLevel = flags.logLevel as Config['logLevel'];
  return cfg;
}

/** Run the daemon until SIGTERM/SIGINT. */
export async function serve(cfg: Config): Promise<void> {
  const log = createLogger(cfg.logLevel);
  const snapshotter = await Snapshotter.open({ root: cfg.root, log });
  const server = await serveSnapshots(snapshotter, cfg.address, log);
  log.info({ address: cfg.address, root: cfg.root }, 'serving');
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ signal }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await shutdown(server, snapshotter, log);
}

async function shutdown(server: Awaited<ReturnType<typeof serveSnapshots>>, s: Snapshotter, log: Logger): Promise<void> {
  try {
    await stopServer(server);
    s.close();
    log.info('stopped');
  } catch (err) {
    log.error({ err: messageOf(err) }, 'unclean shutdown');
  }
}
