/**
 * Issue 5, item 5: no index artifact in the registry. Node A builds each layer's clip index from the
 * layer itself (downloading it once), keeps the layer and publishes both the index and the layer to
 * the ContentCache; node B is still lazy: it resolves every index from the ContentCache and fetches
 * no layer blob from the registry.
 */
import t from 'tap';
import { RedisContentCache, loadMacKeys } from '../../snapshotter/src/contentcache/index.js';
import { indexCacheKey } from '../../snapshotter/src/remote/index.js';
import { startRedis } from '../harness/redis.js';
import { testClusterKeyFile } from '../harness/daemon-config.js';
import { eventually, layerTraffic, logRecords, metric, pullAndRun, startClusterNode, startTwoNodeStack } from '../harness/clip-node.js';

t.setTimeout(300_000);

t.test('an index built on the fly on node A makes node B lazy', async (t) => {
  const { ha, hb, registry, images: { tricky } } = await startTwoNodeStack(t, 'clip-fly-');
  const redis = await startRedis(t);
  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address] });
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address] });
  const digests = tricky.layers.map((l) => l.digest);

  const mark = registry.accessLogLines().length;
  t.equal((await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node A ran the container');
  const built = logRecords(a.snap, 'index resolved');
  t.ok(built.length > 0 && built.every((r) => r['source'] === 'built'), `node A built its indexes: ${built.map((r) => r['source']).join(',')}`);
  t.equal(layerTraffic(registry, mark, digests).gets, digests.length, 'node A downloaded each layer once (to index it)');

  // The nodes' cluster key: the objects they signed read back here (an unkeyed reader would drop them).
  const cc = new RedisContentCache({ addresses: [redis.address], cluster: false, username: '', password: '', tls: false, timeoutMs: 2_000, mac: loadMacKeys(testClusterKeyFile()) });
  t.teardown(() => cc.close());
  const published = await eventually(async () => {
    for (const l of tricky.layers) {
      if (!(await cc.has(l.diffId, l.uncompressedSize)) || !(await cc.getBlob(indexCacheKey(l.digest)))) return false;
    }
    return true;
  });
  t.ok(published, 'every layer and its index are complete in the ContentCache');

  const markB = registry.accessLogLines().length;
  t.equal((await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node B ran the container');
  const resolved = logRecords(b.snap, 'index resolved');
  t.equal(resolved.length, built.length, 'node B resolved as many indexes as node A built');
  t.ok(resolved.every((r) => r['source'] === 'content_cache'), `node B: every index from the ContentCache: ${resolved.map((r) => r['source']).join(',')}`);
  t.same(layerTraffic(registry, markB, digests), { gets: 0, bytes: 0 }, 'node B fetched no layer blob from the registry');
  t.ok((await metric(b.metricsUrl, 'clip_reads', 'content_cache')) > 0, 'node B metrics: ContentCache reads');
  t.equal(await metric(b.metricsUrl, 'clip_reads', 'registry'), 0, 'node B metrics: no registry reads');
});
