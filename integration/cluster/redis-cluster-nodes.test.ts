/**
 * Issue 5, item 5, against a real 3-master Redis Cluster (`[content_cache] cluster = true`): node A
 * reads a layer cold from the registry and publishes it; node B runs the same image and the
 * registry serves it zero bytes of any layer blob, its reads counted as ContentCache hits.
 */
import t from 'tap';
import { RedisContentCache, loadMacKeys } from '../../snapshotter/src/contentcache/index.js';
import { testClusterKeyFile } from '../harness/daemon-config.js';
import { startRedisCluster } from '../harness/redis.js';
import { clip, eventually, layerTraffic, logRecords, metric, pullAndRun, startClusterNode, startTwoNodeStack } from '../harness/clip-node.js';

t.setTimeout(300_000);

t.test('two nodes share layers through a 3-master Redis Cluster', async (t) => {
  const { ha, hb, registry, images: { tricky } } = await startTwoNodeStack(t, 'clip-cl-');
  const masters = await startRedisCluster(t);
  // Seed each daemon with one master only: the others are discovered.
  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [masters[0]!.address], cluster: true });
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [masters[2]!.address], cluster: true });
  const layer1 = tricky.layers[0]!;
  const layerDigests = tricky.layers.map((l) => l.digest);
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--json'])).code, 0, 'index artifact pushed');

  const mark = registry.accessLogLines().length;
  t.equal((await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node A ran the container');
  const fromA = layerTraffic(registry, mark, [layer1.digest]);
  t.equal(fromA.gets, 1, 'node A fetched layer 1 from the registry exactly once');
  t.ok(fromA.bytes > 0, `node A received layer 1 from the registry (${fromA.bytes} bytes)`);

  // The nodes' cluster key: an unkeyed reader would find their signed objects malformed and drop them.
  const cc = new RedisContentCache({ addresses: masters.map((m) => m.address), cluster: true, username: '', password: '', tls: false, timeoutMs: 2_000, mac: loadMacKeys(testClusterKeyFile()) });
  t.teardown(() => cc.close());
  t.ok(await eventually(() => cc.has(layer1.diffId, layer1.uncompressedSize)), 'layer 1 complete in the Redis Cluster');
  t.ok(logRecords(a.snap, 'stored').some((r) => r['diff_id'] === layer1.diffId), 'node A logged the store of layer 1');
  const chunkKeys = await Promise.all(masters.map(async (m) => Number(await m.cli('DBSIZE'))));
  t.ok(chunkKeys.filter((n) => n > 0).length >= 2, `keys on more than one master: ${chunkKeys.join('/')}`);

  const markB = registry.accessLogLines().length;
  t.equal((await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node B ran the container');
  t.same(layerTraffic(registry, markB, layerDigests), { gets: 0, bytes: 0 }, 'zero layer blob bytes served to node B');
  t.ok((await metric(b.metricsUrl, 'clip_reads', 'content_cache')) > 0, 'node B: reads served by the ContentCache');
  t.equal(await metric(b.metricsUrl, 'clip_reads', 'registry'), 0, 'node B: no registry reads');
  t.ok((await metric(a.metricsUrl, 'clip_reads', 'registry')) > 0, 'node A: registry reads');
});
