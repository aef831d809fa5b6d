export { NoContentCache } from './content-cache.js';
export type { ContentCache, StoreOptions, StoreResult } from './content-cache.js';
export { CONTENT_CACHE_PASSWORD_ENV, contentCacheStoreOptions, createContentCache } from './create-content-cache.js';
export type { ContentCacheConfig } from './create-content-cache.js';
export { parseRedisAddress } from './redis-connection.js';
export type { RedisAddress, RedisEndpoint } from './redis-connection.js';
export { RedisContentCache } from './redis-content-cache.js';
export type { RedisContentCacheOptions } from './redis-content-cache.js';
export { DEFAULT_KEY_PREFIX, RedisKeys } from './redis-keys.js';
