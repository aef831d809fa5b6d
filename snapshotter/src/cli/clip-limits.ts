/** The `[index] max_*` config keys as the ClipLimits that clip/ enforces. */
import type { ClipLimits } from '../clip/index.js';
import type { Config } from '../config/index.js';

/** Bounds on hostile layers and indexes, from the config. */
export function clipLimitsOf(cfg: Pick<Config, 'index'>): ClipLimits {
  return {
    maxEntries: cfg.index.maxEntries,
    maxIndexBytes: cfg.index.maxIndexBytes,
    maxXattrBytesPerEntry: cfg.index.maxXattrBytesPerEntry,
    maxXattrBytesTotal: cfg.index.maxXattrBytes,
  };
}
