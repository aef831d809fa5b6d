/**
 * Sharing what range reads fetched (issue 8, items 3 and 4), through a real Redis ContentCache:
 * node A starts a container cold through range reads, shares every span it decodes and records
 * which parts of each layer it read (a start profile). Node B, with a cold disk, reads those spans
 * from the ContentCache — no layer request to the registry. Node C finds only the profiles (the
 * spans evicted): it prefetches them as soon as the layers are mounted, so the container's start
 * needs no layer request of its own.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { startRedis } from '../harness/redis.js';
import { clip, eventually, layerTraffic, logRecords, metric, pullAndRun, startClusterNode } from '../harness/clip-node.js';

t.setTimeout(300_000);

/** Small spans so the small test layers get several, and completion off so layers stay sparse. */
const ZRAN_TOML = '[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = 65536\ncheckpoint_min_layer_bytes = 0\nrange_reads = true\nrange_completion_bytes_per_sec = 0\n';
const PREFETCH_TOML = '[prefetch]\nrecord_window_ms = 1500\n';
const CMD = ['cat', '/data/keep.txt', '/data/delete-dir/recreated.txt'];

t.test('spans and start profiles recorded on one node make the next cold nodes start without waiting on the registry', async (t) => {
  const ha = createHarness(t, 'clip-prof-a-');
  const hb = createHarness(t, 'clip-prof-b-');
  const hc = createHarness(t, 'clip-prof-c-');
  const registry = await ha.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const redis = await startRedis(t);
  const tricky = images.tricky;
  const digests = tricky.layers.map((l) => l.digest);
  const indexCfg = join(ha.root, 'index-config.toml');
  await writeFile(indexCfg, ZRAN_TOML);
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--config', indexCfg])).code, 0, 'indexes with checkpoints published');

  const settings = { redisAddresses: [redis.address], extraToml: ZRAN_TOML + PREFETCH_TOML };
  const a = await startClusterNode(ha, 'a', registry, settings);
  let mark = registry.accessLogLines().length;
  t.equal((await pullAndRun(a, tricky.ref, CMD)).stdout, 'keep\nback in layer 3\n');
  const coldA = layerTraffic(registry, mark, digests);
  t.ok(coldA.gets > 0, `node A read its layers through ${coldA.gets} range request(s), ${coldA.bytes} bytes`);
  const profileKeys = async () => (await redis.cli('--scan', '--pattern', '*profile:v1:*')).split('\n').filter(Boolean);
  t.ok(await eventually(async () => (await profileKeys()).length > 0, 20_000), 'node A published start profiles to Redis');
  t.notOk((await redis.cli('--scan', '--pattern', '*:manifest')).trim(), 'no complete layer object in the ContentCache (completion is off)');

  // Node B: cold disk, but node A's decoded spans are in the ContentCache: no layer request at all.
  const spanKeys = async () => (await redis.cli('--scan', '--pattern', '*:blob:span:v1:*')).split('\n').filter(Boolean);
  t.ok(await eventually(async () => (await spanKeys()).length > 0, 10_000), 'node A shared the spans it decoded');
  const b = await startClusterNode(hb, 'b', registry, settings);
  mark = registry.accessLogLines().length;
  t.equal((await pullAndRun(b, tricky.ref, CMD)).stdout, 'keep\nback in layer 3\n');
  t.equal(layerTraffic(registry, mark, digests).gets, 0, 'node B read every span node A had read from the ContentCache, none from the registry');
  // Its start profiles were prefetched from the shared spans, so reads find them on disk by now.
  const served = (await metric(b.metricsUrl, 'clip_reads', 'content_cache')) + (await metric(b.metricsUrl, 'clip_reads', 'disk'));
  t.ok(served > 0, `node B metrics: ${served} reads served from the ContentCache or spans already on disk`);
  t.equal(await metric(b.metricsUrl, 'clip_reads', 'registry'), 0, 'node B metrics: no registry reads');

  // Node C: the shared spans are gone (evicted), only the profiles are left.
  for (const k of await spanKeys()) await redis.cli('del', k);
  const c = await startClusterNode(hc, 'c', registry, settings);
  mark = registry.accessLogLines().length;
  const pulled = await clip(['pull', tricky.ref, '--address', c.c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, 'node C pulled (layers mounted lazily)');
  const profiles = (await profileKeys()).length;
  t.ok(
    await eventually(() => logRecords(c.snap, 'prefetched layer start profile').length >= profiles, 30_000),
    `node C prefetched from all ${profiles} profile(s)`,
  );
  const prefetched = layerTraffic(registry, mark, digests);
  t.ok(prefetched.gets > 0, `prefetch fetched ${prefetched.bytes} bytes in ${prefetched.gets} range request(s) before the container started`);
  mark = registry.accessLogLines().length;
  const res = await c.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.c.runcArgs(), tricky.ref, 'c-profiled', ...CMD], { timeoutMs: 120_000 });
  t.equal(res.stdout, 'keep\nback in layer 3\n');
  const during = layerTraffic(registry, mark, digests);
  t.equal(during.gets, 0, 'the container start on node C needed no layer request: everything it read was prefetched');
  t.notMatch(c.snap.log(), /range reads disabled|start profile unreadable/, 'no fallback, no damaged profile');
});
