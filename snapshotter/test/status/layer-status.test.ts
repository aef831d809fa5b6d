import t from 'tap';
import { LayerLedger, type LayerRef } from '../../src/storage/index.js';
import { imageMatches, layerMetricsSamples, layerStatus, startTraceHooks } from '../../src/status/index.js';
import { formatStatus } from '../../src/cli/status-command.js';

const hex = (c: string) => c.repeat(64);
const ref = (c: string, image = 'reg:5000/app:1'): LayerRef => ({ ref: image, digest: `sha256:${hex('d')}`, diffId: `sha256:${hex(c)}`, uncompressedSize: 1000 });

t.test('status of mounted layers: presence from the store, answers from the ledger', async (t) => {
  const ledger = new LayerLedger();
  const a = ref('a');
  const b = ref('b');
  const other = ref('c', 'reg:5000/other:2');
  ledger.opened(a, false);
  ledger.read(hex('a'), 'registry', 300);
  ledger.fetched(hex('a'), 'on_demand', 120);
  ledger.opened(b, false);
  ledger.read(hex('b'), 'content_cache', 400);
  ledger.opened(other, true);
  const presence = new Map([[a.diffId, { presentBytes: 600, complete: false, completing: true }], [b.diffId, { presentBytes: 0, complete: false, completing: false }]]);
  const src = {
    mounted: () => [{ layer: a }, { layer: a }, { layer: b }, { layer: other }],
    store: { ledger, presence: async (r: LayerRef) => presence.get(r.diffId) ?? { presentBytes: 1000, complete: true, completing: false } },
  };
  const layers = await layerStatus(src, 'reg:5000/app');
  t.same(layers.map((l) => [l.diffId.slice(7, 8), l.mounts, l.mode, l.presentBytes, l.completing]), [['a', 2, 'lazy', 600, true], ['b', 1, 'lazy', 0, false]], 'only the image asked for, one line per layer');
  t.equal(layers[0]!.fetched.on_demand, 120);
  t.equal(layers[1]!.fetched.content_cache, 400);
  const text = formatStatus(layers);
  t.match(text, /reg:5000\/app:1: 2 layer\(s\): 2 lazy/);
  t.match(text, /present 600 B of 1000 B \(60%\), completion running/);
  t.match(text, /fetched: content_cache 400 B/);
  t.equal(formatStatus([]), 'no lazily mounted layers\n');
  const all = await layerStatus(src);
  t.equal(all.find((l) => l.image === other.ref)?.mode, 'local', 'complete on disk when mounted, read nothing else');
  const withExtracted = await layerStatus({ ...src, store: { ...src.store, extracted: { has: (h: string) => `sha256:${h}` === other.diffId } } });
  const ext = withExtracted.find((l) => l.image === other.ref);
  t.equal(ext?.extracted, true, 'an extracted layer says so');
  t.equal(withExtracted.find((l) => l.diffId === a.diffId)?.extracted, false);
  t.match(formatStatus(withExtracted), /complete, extracted \(new containers read it without FUSE\)/);
});

t.test('image names match by reference or repository', async (t) => {
  t.ok(imageMatches('reg:5000/app:1', 'reg:5000/app:1'));
  t.ok(imageMatches('reg:5000/app:1', 'reg:5000/app'));
  t.ok(imageMatches(`reg:5000/app@sha256:${hex('e')}`, 'reg:5000/app:2'));
  t.notOk(imageMatches('reg:5000/app:1', 'reg:5000/apple'));
});

t.test('metrics samples and start-trace summaries read the same ledger', async (t) => {
  const ledger = new LayerLedger();
  const a = ref('a');
  ledger.fetched(hex('a'), 'index_build', 900, a);
  ledger.opened(a, true);
  const hooks = startTraceHooks(ledger);
  const base = hooks.baseline(a.diffId, Date.now() + 1000);
  ledger.read(hex('a'), 'disk', 50);
  const attrs = hooks.summarize(a.diffId, base);
  t.equal(attrs['clip.layer.mode'], 'local', 'a trace that only read the disk');
  t.equal(attrs['clip.fetched.index_build'], 0, 'bytes fetched before the trace are not its own');
  const fresh = startTraceHooks(ledger).summarize(a.diffId, undefined);
  t.equal(fresh['clip.layer.mode'], 'whole', 'a layer first seen during the trace counts its index build');
  t.same(hooks.summarizeImage([attrs, fresh]), {
    'clip.image.layers.lazy': 0, 'clip.image.layers.whole': 1, 'clip.image.layers.local': 1, 'clip.image.layers.unread': 0,
    'clip.fetched.on_demand': 0, 'clip.fetched.prefetch': 0, 'clip.fetched.background': 0, 'clip.fetched.whole': 0, 'clip.fetched.index_build': 900,
    'clip.fetched.content_cache': 0, 'clip.served.disk': 100, 'clip.served.content_cache': 0, 'clip.served.registry': 0,
  });
  const [sample] = layerMetricsSamples(ledger.entries());
  t.match(sample, { image: a.ref, layer: a.digest, lazy: 0, fetched: { index_build: 900 }, served: { disk: 50 } });
});
