/**
 * Span offers wait for a container's reads (issue 15), through containerd and a real Redis
 * ContentCache: a container misses once (the spans of its small files are fetched and decoded),
 * then keeps reading files whose spans are already on disk, with short pauses, for longer than
 * `[content_cache] span_offer_idle_ms`. None of the decoded spans may reach Redis while it reads — those
 * reads need the daemon's thread — and all of them must once its reads have paused.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness } from '../harness/index.js';
import { buildAndPushImages, packLayer } from '../images/index.js';
import { startRedis } from '../harness/redis.js';
import { baseLayerOf, gzipLayer, pushCraftedImage } from '../security/crafted-image.js';
import { clip, eventually, logRecords, startClusterNode } from '../harness/clip-node.js';

t.setTimeout(300_000);

const FILES = 40;
/** The reads go on for FILES × PAUSE_S = 10 s, twice the idle time: without the reads counted, offers would go out half-way. */
const PAUSE_S = 0.25;
const IDLE_MS = 5_000;
const TOML = [
  '[index]', 'gzip_checkpoints = true', 'checkpoint_span_bytes = 65536', 'checkpoint_min_layer_bytes = 0', 'range_reads = true',
  'range_completion_bytes_per_sec = 0',
  '[prefetch]', 'enabled = false',
  '[cache]', 'extract_completed = false', '',
].join('\n');

t.test('spans a container decoded reach the ContentCache only once its reads of present spans pause', async (t) => {
  const h = createHarness(t, 'clip-offers-');
  const registry = await h.startRegistry();
  const { busybox } = await buildAndPushImages({ hostPort: registry.hostPort }, ['busybox']);
  const src = join(h.root, 'layer');
  mkdirSync(join(src, 'data', 's'), { recursive: true });
  // Small files next to each other in the tar: the first read fetches the spans of all of them.
  for (let i = 0; i < FILES; i++) writeFileSync(join(src, 'data', 's', `f${i}`), randomBytes(100).toString('hex'));
  await packLayer(src, `${src}.tar`);
  const image = await pushCraftedImage(registry.hostPort, 'offers', [baseLayerOf(busybox), gzipLayer(readFileSync(`${src}.tar`))]);
  const indexCfg = join(h.root, 'index-config.toml');
  await writeFile(indexCfg, TOML);
  t.equal((await clip(['index', image.ref, '--plain-http', '--config', indexCfg])).code, 0, 'indexes with checkpoints published');

  const redis = await startRedis(t);
  const node = await startClusterNode(h, 'a', registry, { redisAddresses: [redis.address], contentCacheToml: [`span_offer_idle_ms = ${IDLE_MS}`], extraToml: TOML });
  const pulled = await clip(['pull', image.ref, '--address', node.c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, 'pulled (layers mounted lazily)');
  const spanKeys = async (): Promise<number> => (await redis.cli('--scan', '--pattern', '*:blob:span:v1:*')).split('\n').filter(Boolean).length;

  const script = `cat /data/s/f0 >/dev/null; i=1; while [ $i -lt ${FILES} ]; do cat /data/s/f$i >/dev/null; sleep ${PAUSE_S}; i=$((i+1)); done; echo read ${FILES}`;
  let running = true;
  const run = node.c.ctr(['run', '--rm', '--snapshotter', 'clip', ...node.c.runcArgs(), image.ref, 'offers-1', 'sh', '-c', script], { timeoutMs: 120_000 })
    .finally(() => { running = false; });
  // Watch Redis while the container reads (polled, not timed: the run's end stops the watch).
  let seenWhileReading = 0;
  while (running) {
    const n = await spanKeys();
    if (running) seenWhileReading = Math.max(seenWhileReading, n);
    await new Promise((r) => setTimeout(r, 200));
  }
  const res = await run;
  t.equal(res.stdout.trim(), `read ${FILES}`, 'the container read every file');
  t.ok(logRecords(node.snap, 'layer spans fetched').length > 0, 'its spans came by range reads');
  t.equal(seenWhileReading, 0, 'no span offer was published while the container read (its reads of present spans held them back)');
  t.ok(await eventually(async () => (await spanKeys()) > 0, 60_000), 'the decoded spans reached the ContentCache once the reads paused');
  t.notMatch(node.snap.log(), /range reads disabled/, 'no fallback to whole-layer reads');
});
