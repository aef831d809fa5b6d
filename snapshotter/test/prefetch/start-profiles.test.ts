import { join } from 'node:path';
import t, { type Test } from 'tap';
import { StartProfiles, decodeProfile, profileKey } from '../../src/prefetch/index.js';
import { LayerStore } from '../../src/storage/index.js';
import { readRange, recordingLogger, tempDir } from '../storage/fixtures.js';
import { BlobOnlyCache, RangeBlobSource, gzipLayer } from '../storage/range-fixtures.js';

const layer = gzipLayer();
const ref = { ...layer.ref, gzipCheckpoints: layer.checkpoints };
/** What "the container" reads at start: two places far apart in the 12 MiB layer. */
const startReads: Array<[number, number]> = [[3 * 1024 * 1024 + 100, 200_000], [11 * 1024 * 1024 + 5, 4096]];

/** One node: its own disk, the shared ContentCache. */
async function node(t: Test, cache: BlobOnlyCache, windowMs = 60_000) {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  const { log, records } = recordingLogger();
  const store = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: cache, rangeReads: true, log });
  const profiles = new StartProfiles({ contentCache: cache, store, recordWindowMs: windowMs, maxBytes: 0, log });
  t.teardown(async () => {
    await profiles.close();
    await store.close();
  });
  return { store, profiles, blobs, records };
}

t.test('the first node records a start profile; the next cold node prefetches exactly those spans', async (t) => {
  const cache = new BlobOnlyCache();
  const a = await node(t, cache);
  const ra = a.profiles.attach(a.store.open(ref));
  for (const [off, len] of startReads) t.ok((await readRange(ra, off, len)).equals(layer.tar.subarray(off, off + len)));
  await ra.close();
  await a.profiles.drain();
  const stored = cache.blobs.get(profileKey(layer.ref.diffId));
  t.ok(stored, 'profile published under the diffID');
  t.same(decodeProfile(stored!, layer.tar.length), startReads.map(([o, l]) => [o, o + l]));

  // Without node A's shared spans (evicted), so the prefetch has to use the registry.
  for (const k of [...cache.blobs.keys()]) if (k.startsWith('span:')) cache.blobs.delete(k);
  const b = await node(t, cache);
  const rb = b.profiles.attach(b.store.open(ref));
  await b.profiles.drain();
  const prefetched = b.blobs.ranges.length;
  t.ok(prefetched > 0 && prefetched <= 2, `prefetch used ${prefetched} range request(s)`);
  t.equal(b.blobs.opens, 0, 'no whole-layer download');
  const bytes = b.blobs.ranges.reduce((n, [s, e]) => n + e - s, 0);
  t.ok(bytes < layer.blob.length / 3, `prefetched ${bytes} of ${layer.blob.length} compressed bytes`);
  t.ok(b.records.some((r) => r['msg'] === 'prefetched layer start profile'));
  for (const [off, len] of startReads) t.ok((await readRange(rb, off, len)).equals(layer.tar.subarray(off, off + len)), `bytes at ${off}`);
  t.equal(b.blobs.ranges.length, prefetched, 'the container\'s start reads needed no further request');
  const other = 6 * 1024 * 1024;
  t.ok((await readRange(rb, other, 100)).equals(layer.tar.subarray(other, other + 100)));
  t.equal(b.blobs.ranges.length, prefetched + 1, 'a read outside the profile is an ordinary miss');
  await rb.close();
  await b.profiles.drain();
  const merged = decodeProfile(cache.blobs.get(profileKey(layer.ref.diffId))!, layer.tar.length);
  t.equal(merged.length, 3, 'the new read was merged into the profile');
});

t.test('a damaged profile is logged and ignored; reads work and a fresh profile replaces it', async (t) => {
  const cache = new BlobOnlyCache();
  cache.blobs.set(profileKey(layer.ref.diffId), Buffer.from('CLPF garbage'));
  const n = await node(t, cache);
  const r = n.profiles.attach(n.store.open(ref));
  await n.profiles.drain();
  t.equal(n.blobs.ranges.length, 0, 'nothing prefetched');
  t.ok(n.records.some((rec) => rec['msg'] === 'start profile unreadable; not prefetching' && rec['code'] === 'CLIP_PROFILE_CORRUPT'));
  const [off, len] = startReads[0]!;
  t.ok((await readRange(r, off, len)).equals(layer.tar.subarray(off, off + len)));
  await r.close();
  await n.profiles.drain();
  t.same(decodeProfile(cache.blobs.get(profileKey(layer.ref.diffId))!, layer.tar.length), [[off, off + len]]);
});

t.test('a layer already on disk is not prefetched; reads that add nothing publish nothing', async (t) => {
  const cache = new BlobOnlyCache();
  const n = await node(t, cache);
  const whole = n.store.open(layer.ref); // no checkpoints: the first read downloads it whole
  await readRange(whole, 0, 10);
  await n.store.drain();
  await whole.close();
  cache.blobs.set(profileKey(layer.ref.diffId), (await import('../../src/prefetch/index.js')).encodeProfile([[0, 4096]]));
  const before = cache.blobs.get(profileKey(layer.ref.diffId));
  const r = n.profiles.attach(n.store.open(ref));
  await n.profiles.drain();
  t.equal(n.blobs.ranges.length, 0, 'no range requests for a cached layer');
  await readRange(r, 0, 100);
  await r.close();
  await n.profiles.drain();
  t.equal(cache.blobs.get(profileKey(layer.ref.diffId)), before, 'profile untouched');
});

t.test('a layer the ContentCache holds is not prefetched from the registry', async (t) => {
  const cache = new BlobOnlyCache();
  cache.blobs.set(profileKey(layer.ref.diffId), (await import('../../src/prefetch/index.js')).encodeProfile([[0, 4096], [9_000_000, 9_100_000]]));
  cache.holdsLayers = true;
  const n = await node(t, cache);
  const r = n.profiles.attach(n.store.open(ref));
  await n.profiles.drain();
  t.equal(n.blobs.ranges.length, 0, 'no range request');
  await r.close();
});
