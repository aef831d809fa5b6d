/**
 * The config of `serve`, `fuse-server` and `upgrade-fuse-server`: defaults, the config file, then
 * flags. Its own module so the FUSE server reads its config without loading the daemon.
 */
import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../config/index.js';
import { invalidArgument } from '../errors/index.js';
import { LOG_LEVELS } from '../log/index.js';

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
