import t from 'tap';
import { parseRedisAddress } from '../../src/contentcache/index.js';

t.test('addresses', async (t) => {
  t.same(parseRedisAddress('10.0.0.1:6379'), { host: '10.0.0.1', port: 6379, tls: false });
  t.same(parseRedisAddress('redis://cache.local:7000'), { host: 'cache.local', port: 7000, tls: false });
  t.same(parseRedisAddress('rediss://cache.local:6380/'), { host: 'cache.local', port: 6380, tls: true });
  t.same(parseRedisAddress('[::1]:6379'), { host: '::1', port: 6379, tls: false });
  for (const bad of ['nohost', 'host:', 'redis://user:pw@h:1', 'h:70000', 'http://h:1']) {
    t.throws(() => parseRedisAddress(bad), { kind: 'invalid_argument', code: 'CLIP_CONTENT_CACHE_BAD_OPTIONS' }, bad);
  }
});
