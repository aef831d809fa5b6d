/**
 * RedisContentCache against a real standalone redis-server: the shared suite, then what only a
 * real server can show — AUTH, a server that dies, one that hangs, and the storage tier's circuit
 * breaker in front of them.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { NoContentCache, RedisContentCache, RedisKeys, createContentCache } from '../../snapshotter/src/contentcache/index.js';
import { parseConfig } from '../../snapshotter/src/config/index.js';
import { silentLogger } from '../../snapshotter/src/log/index.js';
import { contentCacheSuite, freshKey, makeContent } from './content-cache-suite.js';
import { startRedis } from '../harness/redis.js';

const base = { cluster: false, username: '', password: '', tls: false, timeoutMs: 1_000 };

t.test('shared suite: standalone Redis', async (t) => {
  const server = await startRedis(t);
  const raw = new Redis({ port: server.port, host: '127.0.0.1' });
  t.teardown(() => raw.disconnect());
  const keys = new RedisKeys();
  contentCacheSuite(t, { raw, keys, make: (o) => new RedisContentCache({ ...base, addresses: [server.address], lockTtlMs: 2_000, ...o }) });
});

t.test('shared suite: NoContentCache', async (t) => {
  contentCacheSuite(t, { make: () => new NoContentCache() });
});

t.test('AUTH: the right password works, a wrong one is unavailable (and never logged)', async (t) => {
  const server = await startRedis(t, { requirepass: 's3cret-pw' });
  const good = new RedisContentCache({ ...base, addresses: [server.address], password: 's3cret-pw' });
  t.teardown(() => good.close());
  const key = freshKey();
  await good.putBlob(key, Buffer.from('index'));
  t.same(await good.getBlob(key), Buffer.from('index'));
  const none = new RedisContentCache({ ...base, addresses: [server.address] });
  t.teardown(() => none.close());
  await t.rejects(none.getBlob(key), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' });
  const lines: string[] = [];
  const { pino } = await import('pino');
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  const wrong = createContentCache(
    parseConfig(`[content_cache]\nbackend = "redis"\naddresses = ["${server.address}"]\npassword = "file-pw"\n`, 'x').contentCache,
    log,
    { CLIP_CONTENT_CACHE_PASSWORD: 'wrong-env-pw' },
  );
  t.teardown(() => wrong.close());
  const err = await wrong.getBlob(key).catch((e: unknown) => e as Error);
  t.match(err, { kind: 'unavailable', message: /WRONGPASS|NOAUTH|closed/ });
  t.notMatch(String((err as Error).message) + lines.join(''), /wrong-env-pw|file-pw/, 'no password in errors or logs');
  const envGood = createContentCache(
    parseConfig(`[content_cache]\nbackend = "redis"\naddresses = ["${server.address}"]\n`, 'x').contentCache,
    silentLogger(),
    { CLIP_CONTENT_CACHE_PASSWORD: 's3cret-pw' },
  );
  t.teardown(() => envGood.close());
  t.same(await envGood.getBlob(key), Buffer.from('index'), 'password from CLIP_CONTENT_CACHE_PASSWORD');
});

t.test('Redis down: unavailable at once (not after timeout_ms), and back when it returns', async (t) => {
  const server = await startRedis(t);
  // timeout_ms long (a failure that waited for it would take minutes and say "timed out"): each
  // failure must name the refused connection instead.
  const cc = new RedisContentCache({ ...base, addresses: [server.address], timeoutMs: 60_000 });
  t.teardown(() => cc.close());
  const key = freshKey();
  await cc.putBlob(key, Buffer.from('x'));
  await server.stop();
  // Either the refused connect itself, or the client failing fast while it reconnects (ioredis
  // words that as "reconnecting", "closed" or "stream isn't writeable" depending on its state).
  const refused = /ECONNREFUSED|is reconnecting|Connection is closed|Stream isn't writeable/;
  for (let i = 0; i < 5; i++) {
    await t.rejects(cc.readInto(key, 0, 1, Buffer.alloc(1), 0), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: refused });
  }
  const never = new RedisContentCache({ ...base, addresses: [server.address], timeoutMs: 60_000 });
  t.teardown(() => never.close());
  await t.rejects(never.has(key, 1), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: refused }, 'a cache that never connected fails at once too');
  await server.restart();
  const { waitUntil } = await import('../harness/index.js');
  await waitUntil('reconnect', () => cc.has(key, 1).then(() => true, () => false), 10_000, 100);
  t.pass('reconnected after Redis came back');
});

t.test('chunks are LZ4-compressed in Redis', async (t) => {
  const server = await startRedis(t);
  const cc = new RedisContentCache({ ...base, addresses: [server.address], chunkSizeBytes: 65536 });
  t.teardown(() => cc.close());
  const text = Buffer.from('compressible layer bytes\n'.repeat(10_000));
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const dir = await mkdtemp('/tmp/clip-cc-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(`${dir}/l`, text);
  const key = freshKey();
  const r = await cc.storeFile(key, `${dir}/l`, text.length);
  t.ok(r.type === 'stored' && r.storedBytes < text.length / 10, `stored ${JSON.stringify(r)}`);
  const used = Number(await server.cli('STRLEN', cc.keys.chunk(key, 65536, 0)));
  t.ok(used > 0 && used < 65536 / 10, `chunk 0 is ${used} bytes in Redis`);
  t.ok(makeContent(10).length === 10);
});
