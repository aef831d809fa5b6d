/**
 * RedisContentCache against a real 3-master Redis Cluster (`redis-cli --cluster create`): the
 * shared suite, plus proof that one layer's chunks spread over every master.
 */
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { RedisContentCache, RedisKeys } from '../../snapshotter/src/contentcache/index.js';
import { contentCacheSuite, freshKey, makeContent } from './content-cache-suite.js';
import { startRedisCluster } from '../harness/redis.js';

const base = { cluster: true, username: '', password: '', tls: false, timeoutMs: 2_000 };

t.test('Redis Cluster (3 masters)', async (t) => {
  const nodes = await startRedisCluster(t);
  const addresses = nodes.map((n) => n.address);
  const raw = new Cluster([{ host: '127.0.0.1', port: nodes[0]!.port }]);
  t.teardown(() => raw.disconnect());
  // Seed with one node only: the rest of the cluster is discovered.
  const make = (o: object = {}): RedisContentCache =>
    new RedisContentCache({ ...base, addresses: [addresses[1]!], lockTtlMs: 2_000, ...o });

  t.test('shared suite', async (t) => {
    contentCacheSuite(t, { raw, keys: new RedisKeys(), make });
  });

  t.test("one layer's chunks land on every master", async (t) => {
    const cs = 16 * 1024;
    const data = makeContent(48 * cs, 21);
    const dir = await mkdtemp(join(tmpdir(), 'clip-cc-cluster-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'l'), data);
    const cc = make({ chunkSizeBytes: cs });
    t.teardown(() => cc.close());
    const key = freshKey();
    t.match(await cc.storeFile(key, join(dir, 'l'), data.length), { type: 'stored', chunks: 48 });
    const perNode = await Promise.all(
      nodes.map(async (n) => {
        let count = 0;
        for (let i = 0; i < 48; i++) {
          const slot = Number(await n.cli('CLUSTER', 'KEYSLOT', cc.keys.chunk(key, cs, i)));
          count += Number(await n.cli('CLUSTER', 'COUNTKEYSINSLOT', String(slot))) > 0 && (await n.cli('EXISTS', cc.keys.chunk(key, cs, i))) === '1' ? 1 : 0;
        }
        return count;
      }),
    );
    t.equal(perNode.reduce((a, b) => a + b, 0), 48, `every chunk stored exactly once: ${perNode.join('/')}`);
    t.ok(perNode.every((c) => c > 0), 'each master holds some chunks');
    const buf = Buffer.alloc(data.length);
    const reader = make({ chunkSizeBytes: cs });
    t.teardown(() => reader.close());
    t.equal(await reader.readInto(key, 0, data.length, buf, 0), data.length);
    t.ok(buf.equals(data), 'read back across all masters');
  });
});
