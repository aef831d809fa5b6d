import t from 'tap';
import { LayerLedger, diffCounters, modeOf, snapshotCounters } from '../../src/storage/index.js';

const hex = 'b'.repeat(64);
const ref = { ref: 'r/app:1', digest: `sha256:${'c'.repeat(64)}`, diffId: `sha256:${hex}`, uncompressedSize: 1000 };

t.test('a lazily served layer: on-demand and background registry bytes, first read time', async (t) => {
  let now = 1000;
  const l = new LayerLedger(() => now);
  l.opened(ref, false);
  t.equal(modeOf(l.get(ref.diffId)!, false), 'unread');
  now = 1250;
  l.read(hex, 'registry', 100);
  l.fetched(hex, 'on_demand', 40);
  l.fetched(hex, 'background', 60);
  l.read(hex, 'disk', 10);
  const e = l.get(ref.diffId)!;
  t.equal(e.firstReadAt! - e.openedAt, 250);
  t.same(e.registry, { on_demand: 40, prefetch: 0, background: 60, whole: 0, index_build: 0 });
  t.same(e.served, { disk: 10, content_cache: 0, registry: 100 });
  t.equal(modeOf(e, e.localAtOpen), 'lazy');
});

t.test('modes: whole, ContentCache, local; deltas over a period', async (t) => {
  const l = new LayerLedger();
  l.fetched(hex, 'index_build', 500, ref);
  l.opened({ ...ref, ref: 'r/app:2' }, true);
  const e = l.get(hex)!;
  t.same(e.images, ['r/app:1', 'r/app:2']);
  t.equal(modeOf(e, e.localAtOpen), 'whole', 'downloaded whole to build its index');
  const before = snapshotCounters(e);
  l.read(hex, 'disk', 30);
  const delta = diffCounters(l.get(hex)!, before);
  t.equal(modeOf(delta, false), 'local', 'a later period that only read the disk');
  t.equal(delta.registry.index_build, 0);
  const cc = new LayerLedger();
  cc.opened(ref, false);
  cc.read(hex, 'content_cache', 70);
  t.equal(cc.get(hex)!.contentCache, 70);
  t.equal(modeOf(cc.get(hex)!, false), 'lazy');
  cc.fetched('f'.repeat(64), 'on_demand', 5);
  t.equal(cc.entries().length, 1, 'bytes of an unknown layer without its ref are not invented');
});
