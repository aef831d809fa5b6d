/** Builds the configured ContentCache from `[content_cache]`; the only place that reads that section. */
import type { Config } from '../config/index.js';
import type { Logger } from '../log/index.js';
import { NoContentCache, type ContentCache } from './content-cache.js';
import { loadMacKeys } from './object-mac.js';
import { parseRedisAddress } from './redis-connection.js';
import { RedisContentCache, type VerifiedKind } from './redis-content-cache.js';

/** The `[content_cache]` section as parsed. */
export type ContentCacheConfig = Config['contentCache'];

/** Environment variable that supplies the Redis password, so it can stay out of the config file. */
export const CONTENT_CACHE_PASSWORD_ENV = 'CLIP_CONTENT_CACHE_PASSWORD';

/**
 * The ContentCache for a config: `NoContentCache` for `backend = "none"` (with the warning that
 * layers will not be shared), else a lazily connecting `RedisContentCache`. A non-empty
 * `CLIP_CONTENT_CACHE_PASSWORD` overrides `password`.
 */
export function createContentCache(
  cfg: ContentCacheConfig,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  onVerificationFailure?: (kind: VerifiedKind) => void,
): ContentCache {
  if (cfg.backend === 'none') {
    log.warn({ source: 'content_cache' }, 'ContentCache not configured: layers will not be shared across the cluster');
    return new NoContentCache();
  }
  const password = env[CONTENT_CACHE_PASSWORD_ENV] || cfg.password;
  const tls = cfg.tls || cfg.addresses.some((a) => parseRedisAddress(a).tls);
  const mac = cfg.keyFile ? loadMacKeys(cfg.keyFile) : undefined;
  if (!mac) {
    log.warn(
      { source: 'content_cache' },
      'ContentCache without key_file (allow_unverified = true): objects are checked by CRC only, so whoever can write to Redis chooses what containers read',
    );
  }
  log.info(
    {
      source: 'content_cache', backend: cfg.backend, addresses: cfg.addresses, cluster: cfg.cluster, tls,
      auth: password ? (cfg.username ? 'acl' : 'password') : 'none', chunk_size_bytes: cfg.chunkSizeBytes,
      on_unavailable: cfg.onUnavailable, authenticated: mac !== undefined,
    },
    'ContentCache configured',
  );
  return new RedisContentCache({
    addresses: cfg.addresses, cluster: cfg.cluster, username: cfg.username, password, tls,
    timeoutMs: cfg.timeoutMs, chunkSizeBytes: cfg.chunkSizeBytes, publishConcurrency: cfg.publishConcurrency,
    readaheadChunks: cfg.readaheadChunks, log: log.child({ component: 'content_cache' }),
    ...(mac ? { mac } : {}), ...(onVerificationFailure ? { onVerificationFailure } : {}),
  });
}

/** The two LayerStore options that come from `[content_cache]`, ready to spread into `LayerStoreOptions`. */
export function contentCacheStoreOptions(
  cfg: ContentCacheConfig,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  onVerificationFailure?: (kind: VerifiedKind) => void,
): { contentCache: ContentCache; onContentCacheUnavailable: ContentCacheConfig['onUnavailable'] } {
  return { contentCache: createContentCache(cfg, log, env, onVerificationFailure), onContentCacheUnavailable: cfg.onUnavailable };
}
