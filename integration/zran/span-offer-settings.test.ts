/**
 * The span-offer queue's `[content_cache]` keys reach a running node (storage/span-offer-queue.ts):
 * a node told to wait ten minutes for its reads to pause offers nothing while it runs and, with no
 * close flush, nothing at shutdown; a node that may hold no span bytes re-reads every span it
 * offers from its sparse file (and checks it again) instead of keeping the decoded buffer.
 */
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { startRedis } from '../harness/redis.js';
import { clip, eventually, logRecords, pullAndRun, startClusterNode } from '../harness/clip-node.js';

t.setTimeout(300_000);

/** Small spans so the small test layers get several, and completion off so only span offers reach Redis. */
const ZRAN_TOML = '[index]\ngzip_checkpoints = true\ncheckpoint_span_bytes = 65536\ncheckpoint_min_layer_bytes = 0\nrange_reads = true\nrange_completion_bytes_per_sec = 0\n';
const PREFETCH_TOML = '[prefetch]\nrecord_window_ms = 1500\n';
const CMD = ['cat', '/data/keep.txt', '/data/delete-dir/recreated.txt'];
const OUT = 'keep\nback in layer 3\n';

t.test('span offers wait, flush and re-read as [content_cache] says', async (t) => {
  const ha = createHarness(t, 'clip-offer-a-');
  const hb = createHarness(t, 'clip-offer-b-');
  const registry = await ha.startRegistry();
  const { tricky } = await buildAndPushImages({ hostPort: registry.hostPort }, ['tricky']);
  const redis = await startRedis(t);
  const indexCfg = join(ha.root, 'index-config.toml');
  await writeFile(indexCfg, ZRAN_TOML);
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--config', indexCfg])).code, 0, 'indexes with checkpoints published');
  const spanKeys = async () => (await redis.cli('--scan', '--pattern', '*:blob:span:v1:*')).split('\n').filter(Boolean);
  const profileKeys = async () => (await redis.cli('--scan', '--pattern', '*profile:v1:*')).split('\n').filter(Boolean);

  // Node A: offers wait ten minutes for the reads to pause, and shutdown publishes none of them.
  const a = await startClusterNode(ha, 'a', registry, {
    redisAddresses: [redis.address],
    contentCacheToml: ['span_offer_idle_ms = 600000', 'span_offer_max_delay_ms = 600000', 'span_offer_close_flush_ms = 0'],
    extraToml: ZRAN_TOML + PREFETCH_TOML,
  });
  t.equal((await pullAndRun(a, tricky.ref, CMD)).stdout, OUT, 'node A ran the container through range reads');
  // The start profile goes out record_window_ms after the first read, long after the container's
  // reads: with the default idle (100 ms) the spans would be in Redis by then.
  t.ok(await eventually(async () => (await profileKeys()).length > 0, 30_000), 'node A published its start profiles');
  t.same(await spanKeys(), [], 'no span offered while the node waits for its reads to pause');
  await a.snap.stop();
  const dropped = logRecords(a.snap, 'span offers to the ContentCache dropped at shutdown');
  const droppedOffers = dropped.reduce((n, r) => n + Number(r['offers'] ?? 0), 0);
  t.ok(droppedOffers > 0, `node A dropped its ${droppedOffers} queued offer(s) at shutdown (span_offer_close_flush_ms = 0)`);
  t.same(await spanKeys(), [], 'nothing published at shutdown');

  // Node B: no span bytes may be held, so every offer re-reads its span from disk when published.
  const b = await startClusterNode(hb, 'b', registry, {
    redisAddresses: [redis.address],
    contentCacheToml: ['span_offer_max_held_bytes = 0'],
    extraToml: ZRAN_TOML + PREFETCH_TOML,
  });
  t.equal((await pullAndRun(b, tricky.ref, CMD)).stdout, OUT, 'node B ran the container');
  t.ok(await eventually(async () => (await spanKeys()).length > 0, 30_000), 'node B shared the spans it fetched');
  await b.snap.stop();
  const stats = logRecords(b.snap, 'span offers to the ContentCache');
  const published = stats.reduce((n, r) => n + Number(r['published'] ?? 0), 0);
  const reloaded = stats.reduce((n, r) => n + Number(r['reloaded'] ?? 0), 0);
  t.ok(published > 0, `node B published ${published} span offer(s)`);
  t.equal(reloaded, published, 'every one of them re-read from the sparse file (span_offer_max_held_bytes = 0)');
});
