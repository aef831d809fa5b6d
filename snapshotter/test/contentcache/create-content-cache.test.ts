import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NoContentCache, RedisContentCache, contentCacheStoreOptions, createContentCache } from '../../src/contentcache/index.js';
import { defaultConfig, parseConfig } from '../../src/config/index.js';
import { LayerStore } from '../../src/storage/index.js';
import { FakeBlobSource, recordingLogger, tempDir } from '../storage/fixtures.js';

const redisToml = `[content_cache]
backend = "redis"
addresses = ["127.0.0.1:1", "rediss://cache.example:6380"]
cluster = true
username = "clip"
password = "from-file"
chunk_size_bytes = 1048576
timeout_ms = 250
on_unavailable = "error"
publish_concurrency = 8
readahead_chunks = 4
allow_unverified = true
`;

t.test('[content_cache] defaults and values', async (t) => {
  t.same(defaultConfig().contentCache, {
    backend: 'none', addresses: [], cluster: false, username: '', password: '', keyFile: '', allowUnverified: false, tls: false,
    chunkSizeBytes: 4 << 20, timeoutMs: 1000, onUnavailable: 'registry', publishConcurrency: 4, readaheadChunks: 2,
    spanOfferIdleMs: 100, spanOfferMaxDelayMs: 30_000, spanOfferMaxHeldBytes: 0, spanOfferCloseFlushMs: 2000,
  });
  t.match(parseConfig('[content_cache]\nspan_offer_idle_ms = 0\nspan_offer_max_held_bytes = 8388608\n', 'x').contentCache, { spanOfferIdleMs: 0, spanOfferMaxHeldBytes: 8 << 20 });
  t.match(parseConfig(redisToml, 'x').contentCache, {
    backend: 'redis', cluster: true, username: 'clip', chunkSizeBytes: 1 << 20, timeoutMs: 250, onUnavailable: 'error', publishConcurrency: 8, readaheadChunks: 4,
  });
  for (const [bad, re] of [
    ['addresses = ["redis://u:p@h:1"]', /content_cache\.addresses/],
    ['chunk_size_bytes = 100', /content_cache\.chunk_size_bytes" must be between/],
    ['on_unavailable = "ignore"', /content_cache\.on_unavailable" must be one of/],
    ['publish_concurrency = 0', /content_cache\.publish_concurrency/],
    ['readahead_chunks = -1', /content_cache\.readahead_chunks/],
    ['span_offer_max_delay_ms = -1', /content_cache\.span_offer_max_delay_ms/],
  ] as const) {
    t.throws(() => parseConfig(`[content_cache]\n${bad}\n`, 'x'), { kind: 'invalid_argument', message: re }, bad);
  }
});

t.test('backend "redis" without key_file is refused unless allow_unverified says CRCs are enough', async (t) => {
  const unkeyed = redisToml.replace('allow_unverified = true\n', '');
  t.throws(() => parseConfig(unkeyed, '/etc/clip/config.toml'), {
    kind: 'invalid_argument', code: 'CLIP_CONTENT_CACHE_KEY_REQUIRED',
    message: /config \/etc\/clip\/config\.toml: content_cache\.backend = "redis" needs content_cache\.key_file .*content_cache\.allow_unverified = true/,
  });
  t.throws(() => parseConfig(`${unkeyed}allow_unverified = false\n`, 'x'), { code: 'CLIP_CONTENT_CACHE_KEY_REQUIRED' }, 'false is the default');
  t.equal(parseConfig(`${unkeyed}key_file = "/etc/clip/cluster.key"\n`, 'x').contentCache.keyFile, '/etc/clip/cluster.key', 'a key file is enough');
  t.equal(parseConfig(redisToml, 'x').contentCache.allowUnverified, true);
  t.equal(parseConfig('[content_cache]\nbackend = "none"\n', 'x').contentCache.backend, 'none', 'no Redis, no key needed');
});

t.test('backend "none": NoContentCache and the operator warning', async (t) => {
  const { log, records } = recordingLogger();
  const cc = createContentCache(defaultConfig().contentCache, log);
  t.ok(cc instanceof NoContentCache);
  t.match(records, [{ level: 40, msg: 'ContentCache not configured: layers will not be shared across the cluster' }]);
});

t.test('backend "redis": a lazily connecting RedisContentCache; the password never reaches the log', async (t) => {
  const { log, records } = recordingLogger();
  const cc = createContentCache(parseConfig(redisToml, 'x').contentCache, log, { CLIP_CONTENT_CACHE_PASSWORD: 'from-env' });
  t.teardown(() => cc.close());
  t.ok(cc instanceof RedisContentCache);
  t.equal(cc.name, 'redis');
  t.equal((cc as RedisContentCache).chunkSizeBytes, 1 << 20);
  t.match(records, [
    { level: 40, msg: /without key_file \(allow_unverified = true\): objects are checked by CRC only/ },
    { msg: 'ContentCache configured', tls: true, cluster: true, auth: 'acl', authenticated: false },
  ]);
  t.notMatch(JSON.stringify(records), /from-file|from-env/);
  t.throws(() => createContentCache({ ...defaultConfig().contentCache, backend: 'redis' }, log), { code: 'CLIP_CONTENT_CACHE_BAD_OPTIONS' }, 'no addresses');
});

t.test('key_file: objects are signed and verified, the key never logged; a bad key file stops start-up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-cc-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = randomBytes(32).toString('hex');
  writeFileSync(join(dir, 'key'), `${key}\n`, { mode: 0o600 });
  const { log, records } = recordingLogger();
  const cfg = parseConfig(`${redisToml}\nkey_file = "${join(dir, 'key')}"\n`, 'x').contentCache;
  const cc = createContentCache(cfg, log, {});
  t.teardown(() => cc.close());
  t.equal((cc as RedisContentCache).authenticated, true);
  t.match(records, [{ msg: 'ContentCache configured', authenticated: true }]);
  t.equal(records.length, 1, 'no CRC-only warning');
  t.notMatch(JSON.stringify(records), new RegExp(key));
  writeFileSync(join(dir, 'open'), `${key}\n`, { mode: 0o644 });
  t.throws(() => createContentCache({ ...cfg, keyFile: join(dir, 'open') }, log, {}), { code: 'CLIP_CONTENT_CACHE_KEY_INVALID' });
});

// The failure this project exists to prevent: a ContentCache configured but absent from storage.
t.test('a LayerStore built from a config with a Redis ContentCache has it', async (t) => {
  const { log, records } = recordingLogger();
  const cfg = parseConfig(redisToml, 'x');
  const dir = await tempDir(t);
  const store = await LayerStore.create({ cacheDir: dir, blobs: new FakeBlobSource([]), log, ...contentCacheStoreOptions(cfg.contentCache, log) });
  t.teardown(async () => {
    await store.close();
    await store.contentCache.close();
  });
  t.equal(store.contentCache.name, 'redis');
  t.notOk(records.some((r) => String(r['msg']).startsWith('ContentCache not configured')), 'no "not configured" warning');
  t.same(contentCacheStoreOptions(cfg.contentCache, log).onContentCacheUnavailable, 'error', 'on_unavailable reaches the store options');
});
