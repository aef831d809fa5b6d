/**
 * Issue 5, item 5: the ContentCache is an accelerator, never a dependency. Node A publishes its
 * layers to Redis; Redis then dies; a fresh, cold node B still pulls and runs the same image,
 * reading the layer from the registry, and its daemon says why (ContentCache unavailable).
 */
import t from 'tap';
import { startRedis } from '../harness/redis.js';
import { clip, eventually, layerTraffic, logRecords, metric, pullAndRun, startClusterNode, startTwoNodeStack } from '../harness/clip-node.js';

t.setTimeout(300_000);

const UNAVAILABLE = ['content cache unavailable; reading from the registry', 'content cache connection error', 'content cache check failed', 'index lookup failed'];

t.test('with Redis stopped, a cold node runs the container through the registry', async (t) => {
  const { ha, hb, registry, images: { tricky } } = await startTwoNodeStack(t, 'clip-down-');
  const redis = await startRedis(t);
  const layer1 = tricky.layers[0]!;
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--json'])).code, 0, 'index artifact pushed');

  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address] });
  t.equal((await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node A ran the container');
  t.ok(await eventually(() => logRecords(a.snap, 'stored').some((r) => r['diff_id'] === layer1.diffId)), 'node A published layer 1');

  await redis.stop();
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address] });
  const mark = registry.accessLogLines().length;
  const res = await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt']);
  t.equal(res.code, 0, 'the container exited 0');
  t.equal(res.stdout, 'keep\n', 'node B ran the container without the ContentCache');
  const fromB = layerTraffic(registry, mark, [layer1.digest]);
  t.equal(fromB.gets, 1, 'node B fetched layer 1 from the registry (once)');
  t.ok(fromB.bytes > 0, `registry bytes of layer 1 to node B: ${fromB.bytes}`);
  t.ok((await metric(b.metricsUrl, 'clip_reads', 'registry')) > 0, 'node B metrics: registry reads');
  t.equal(await metric(b.metricsUrl, 'clip_reads', 'content_cache'), 0, 'node B metrics: no ContentCache reads');
  const said = UNAVAILABLE.filter((msg) => logRecords(b.snap, msg).length > 0);
  t.ok(said.length > 0, `node B logged the ContentCache as unavailable: ${said.join('; ')}`);
  t.ok(logRecords(b.snap, 'content cache unavailable; reading from the registry').length > 0 || said.includes('content cache check failed'),
    'a read or the layer check fell back to the registry because of the ContentCache');
});
