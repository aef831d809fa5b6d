import t from 'tap';
import type { ContentCache } from '../../src/contentcache/index.js';
import { unavailable } from '../../src/errors/index.js';
import { ContentCacheTier } from '../../src/storage/content-cache-tier.js';
import { RecordingContentCache, recordingLogger } from './fixtures.js';

const ref = { ref: 'r/a:1', digest: 'sha256:aa', diffId: 'sha256:bb', uncompressedSize: 100 };
const read = (tier: ContentCacheTier): Promise<number | undefined> => tier.read(ref, Buffer.alloc(10), 0, 10, 0);
const reads = (cc: RecordingContentCache): number => cc.calls.filter((c) => c.op === 'readInto').length;

t.test('breaker: opens after N failures, skips during cool-down, one probe, closes on success', async (t) => {
  const cc = new RecordingContentCache('unavailable');
  const { log, records } = recordingLogger();
  let now = 1_000_000;
  const tier = new ContentCacheTier(cc, 'registry', log, { failureThreshold: 3, coolDownMs: 150, nowMs: () => now });
  for (let i = 0; i < 10; i++) t.equal(await read(tier), undefined);
  t.equal(reads(cc), 3, 'asked 3 times, then skipped');
  t.equal(tier.breakerState, 'open');
  t.match(tier.stats, { failures: 3, skipped: 7 });
  t.ok(records.some((r) => r['msg'] === 'content cache circuit open; skipping it for reads'));
  now += 149;
  t.equal(await read(tier), undefined);
  t.equal(reads(cc), 3, 'still skipped 1 ms before the cool-down ends');
  now += 1;
  t.equal(await read(tier), undefined);
  t.equal(reads(cc), 4, 'one probe after the cool-down');
  t.equal(tier.breakerState, 'open', 'a failed probe re-opens');
  now += 149;
  await read(tier);
  t.equal(reads(cc), 4, 'and skipping resumes for a whole new cool-down');
  now += 1;
  cc.mode = 'hit';
  cc.objects.set(ref.diffId, Buffer.alloc(100, 7));
  const slowProbe = read(tier);
  t.equal(tier.breakerState, 'half_open');
  t.equal(await read(tier), undefined, 'concurrent reads skip while the probe runs');
  t.equal(await slowProbe, 10);
  t.equal(tier.breakerState, 'closed');
  t.equal(await read(tier), 10);
  t.ok(records.some((r) => r['msg'] === 'content cache reachable again; circuit closed'));
});

t.test('policy "error": failures and an open breaker both fail the read', async (t) => {
  const cc = new RecordingContentCache('unavailable');
  const tier = new ContentCacheTier(cc, 'error', recordingLogger().log, { failureThreshold: 2, coolDownMs: 60_000 });
  for (let i = 0; i < 4; i++) await t.rejects(read(tier), { code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' });
  t.equal(reads(cc), 2);
});

t.test('misses and non-outage errors do not trip the breaker', async (t) => {
  const cc = new RecordingContentCache('miss');
  const tier = new ContentCacheTier(cc, 'registry', recordingLogger().log, { failureThreshold: 1 });
  for (let i = 0; i < 3; i++) await read(tier);
  cc.readInto = async () => {
    throw new Error('decoder bug');
  };
  for (let i = 0; i < 3; i++) t.equal(await read(tier), undefined);
  t.equal(tier.breakerState, 'closed');
  t.match(tier.stats, { misses: 6, failures: 0 });
  cc.readInto = async () => {
    throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'down');
  };
  await read(tier);
  t.equal(tier.breakerState, 'open', 'threshold 1');
});

t.test('publish logs: storing, stored (hash, bytes), skipped, failed', async (t) => {
  const { log, records } = recordingLogger();
  const cc: ContentCache = new RecordingContentCache('miss');
  const tier = new ContentCacheTier(cc, 'registry', log);
  cc.storeFile = async () => ({ type: 'stored', bytes: 100, chunks: 1, storedBytes: 40 });
  await tier.publish(ref, '/x', 100);
  t.match(records.find((r) => r['msg'] === 'stored'), { hash: ref.diffId, bytes: 100, key: ref.diffId, layer: ref.digest, chunks: 1, stored_bytes: 40 });
  t.ok(records.some((r) => r['msg'] === 'storing decompressed layer' && r['key'] === ref.diffId));
  cc.storeFile = async () => ({ type: 'skipped', reason: 'locked' });
  await tier.publish(ref, '/x', 100);
  t.match(records.find((r) => r['msg'] === 'store skipped'), { reason: 'locked' });
  cc.storeFile = async () => {
    throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'redis down');
  };
  await tier.publish(ref, '/x', 100);
  t.match(records.find((r) => r['msg'] === 'store failed'), { bytes: 100, err: /redis down/ });
  t.match(tier.stats, { stored: 1, storeFailures: 1 });
});

t.test('an object shorter than its layer is a miss, never zeros past its end (issue 12)', async (t) => {
  const cc = new RecordingContentCache('hit');
  const { log, records } = recordingLogger();
  cc.objects.set(ref.diffId, Buffer.alloc(60, 7));
  const tier = new ContentCacheTier(cc, 'registry', log);
  t.equal(await tier.read(ref, Buffer.alloc(10), 0, 10, 0), 10, 'within the short object: served');
  t.equal(await tier.read(ref, Buffer.alloc(10), 0, 10, 55), undefined, 'straddling its end: a miss');
  t.equal(await tier.read(ref, Buffer.alloc(10), 0, 10, 70), undefined, 'past its end: a miss');
  t.equal(await tier.read(ref, Buffer.alloc(10), 0, 10, 95), undefined, 'the layer tail: a miss');
  t.ok(records.some((r) => r['msg'] === 'content cache object does not match its layer size; treating it as a miss'));
  cc.objects.set(ref.diffId, Buffer.alloc(100, 7));
  t.equal(await tier.read(ref, Buffer.alloc(10), 0, 10, 95), 5, 'a whole object answers the layer tail');
});
