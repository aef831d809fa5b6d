import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { LayerStore } from '../../src/storage/index.js';
import { open as openFile, readdir } from 'node:fs/promises';
import { SteppedClock, readRange, recordingLogger, tempDir, until } from './fixtures.js';
import type { LayerStoreOptions } from '../../src/storage/index.js';
import { BlobOnlyCache, RangeBlobSource, gzipLayer } from './range-fixtures.js';
import { zranTempDir } from '../zran/fixtures.js';

const layer = gzipLayer();
const ref = { ...layer.ref, gzipCheckpoints: layer.checkpoints };
const reads: Array<[number, number]> = [[5 * 1024 * 1024 + 3, 300_000], [11 * 1024 * 1024, 8192]];

/** One node: its own disk and registry connection, the shared ContentCache. */
async function node(t: Test, cache: BlobOnlyCache, spanOffers?: LayerStoreOptions['spanOffers']) {
  const dir = await tempDir(t);
  const blobs = new RangeBlobSource(layer);
  const { log, records } = recordingLogger();
  const store = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: cache, rangeReads: true, log, spanOffers });
  t.teardown(() => store.close());
  return { store, blobs, records, dir };
}

const spanKeys = (c: BlobOnlyCache): string[] => [...c.blobs.keys()].filter((k) => k.startsWith(`span:v1:${layer.ref.diffId}:`));

t.test('spans one node range-read are served to the next from the ContentCache, not the registry', async (t) => {
  const cache = new BlobOnlyCache();
  const a = await node(t, cache);
  const ra = a.store.open(ref);
  for (const [off, len] of reads) t.ok((await readRange(ra, off, len)).equals(layer.tar.subarray(off, off + len)));
  await a.store.spanOffersSettled();
  await cache.settled();
  t.ok(a.blobs.ranges.length > 0, 'node A went to the registry');
  t.ok(spanKeys(cache).length >= 2, `node A shared ${spanKeys(cache).length} spans`);

  const b = await node(t, cache);
  const rb = b.store.open(ref);
  for (const [off, len] of reads) t.ok((await readRange(rb, off, len)).equals(layer.tar.subarray(off, off + len)), `bytes at ${off}`);
  t.equal(b.blobs.ranges.length, 0, 'node B made no registry request');
  const other = 1024 * 1024 + 17;
  t.ok((await readRange(rb, other, 100)).equals(layer.tar.subarray(other, other + 100)));
  t.equal(b.blobs.ranges.length, 1, 'a span nobody read yet comes from the registry');
  await ra.close();
  await rb.close();
});

t.test('a damaged shared span is never served: refetched from the registry', async (t) => {
  const cache = new BlobOnlyCache();
  const a = await node(t, cache);
  const ra = a.store.open(ref);
  await readRange(ra, reads[0]![0], reads[0]![1]);
  await a.store.spanOffersSettled();
  await cache.settled();
  t.ok(spanKeys(cache).length > 0, 'node A shared its spans');
  for (const k of spanKeys(cache)) {
    const data = cache.blobs.get(k) as Buffer;
    data[100] = (data[100] as number) ^ 0xff;
  }
  const b = await node(t, cache);
  const rb = b.store.open(ref);
  const [off, len] = reads[0]!;
  t.ok((await readRange(rb, off, len)).equals(layer.tar.subarray(off, off + len)), 'correct bytes');
  t.ok(b.blobs.ranges.length > 0, 'from the registry');
  t.ok(b.records.some((r) => r['msg'] === 'shared span does not match its digest; fetching it from the registry'));
  await ra.close();
  await rb.close();
});

t.test('an unreachable ContentCache pauses sharing; reads go on from the registry', async (t) => {
  const cache = new BlobOnlyCache();
  cache.down = true;
  const n = await node(t, cache);
  const r = n.store.open(ref);
  for (const [off, len] of reads) t.ok((await readRange(r, off, len)).equals(layer.tar.subarray(off, off + len)));
  await n.store.spanOffersSettled();
  t.equal(n.records.filter((rec) => rec['msg'] === 'span sharing through the ContentCache paused').length, 1, 'logged once');
  await r.close();
});

t.test('background completion is not offered span by span (the whole layer is published once)', async (t) => {
  const cache = new BlobOnlyCache();
  const dir = await zranTempDir(t);
  const blobs = new RangeBlobSource(layer);
  const store = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: cache, rangeReads: true, rangeCompletionBytesPerSec: 1 << 30, rangeCompletionIdleMs: 0,
  });
  t.teardown(() => store.close());
  const r = store.open(ref);
  const [off, len] = reads[1]!;
  t.ok((await readRange(r, off, len)).equals(layer.tar.subarray(off, off + len)));
  await store.drain();
  await store.spanOffersSettled();
  t.ok(existsSync(join(dir, 'layers', layer.hex)), 'completed into the disk cache');
  t.equal(spanKeys(cache).length, 1, 'only the span read on demand was shared');
  await r.close();
});

t.test('offers published after their bytes were let go re-read the span from disk, verified: a damaged one is never offered', async (t) => {
  // The queue holds no bytes (every offer re-reads), and waits on a clock the test moves.
  for (const damage of [false, true]) {
    const cache = new BlobOnlyCache();
    const clock = new SteppedClock();
    const a = await node(t, cache, { maxHeldBytes: 0, idleMs: 1_000, clock });
    const ra = a.store.open(ref);
    const [off, len] = reads[0]!;
    t.ok((await readRange(ra, off, len)).equals(layer.tar.subarray(off, off + len)));
    await until('offers wait for the reads to pause', () => clock.sleeping === 1);
    t.equal(spanKeys(cache).length, 0, 'nothing offered before the reads paused');
    if (damage) {
      const sparse = join(a.dir, 'sparse-layers');
      for (const name of (await readdir(sparse)).filter((n) => /^[0-9a-f]{64}$/.test(n))) {
        const fh = await openFile(join(sparse, name), 'r+');
        await fh.write(Buffer.alloc(len, 0x55), 0, len, off);
        await fh.close();
      }
    }
    clock.advance(1_000);
    await a.store.spanOffersSettled();
    await cache.settled();
    if (damage) {
      t.equal(spanKeys(cache).length, 0, 'spans damaged on disk after they were verified are not offered');
    } else {
      t.ok(spanKeys(cache).length > 0, `${spanKeys(cache).length} spans offered from the sparse file`);
      const b = await node(t, cache);
      const rb = b.store.open(ref);
      t.ok((await readRange(rb, off, len)).equals(layer.tar.subarray(off, off + len)), 'node B reads the right bytes');
      t.equal(b.blobs.ranges.length, 0, 'node B made no registry request');
      await rb.close();
    }
    await ra.close();
  }
});
