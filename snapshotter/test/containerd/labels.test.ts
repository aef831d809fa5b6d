import t from 'tap';
import {
  LABEL_CRI_IMAGE_LAYERS, MAX_LABEL_BYTES, criLayerLabels, extractKey, gcRefSnapshotLabel, imageLayersLabelValue, indexGcLabels, labelFits, manifestGcLabels,
} from '../../src/containerd/index.js';

const dg = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;

t.test('cri labels for a layer', async (t) => {
  const layers = [dg(1), dg(2), dg(3)];
  const labels = criLayerLabels({ imageRef: 'docker.io/library/alpine:latest', manifestDigest: dg(9), layerDigests: layers, index: 1, chainId: dg(7) });
  t.same(labels, {
    'containerd.io/snapshot.ref': dg(7),
    'containerd.io/snapshot/cri.image-ref': 'docker.io/library/alpine:latest',
    'containerd.io/snapshot/cri.layer-digest': dg(2),
    'containerd.io/snapshot/cri.manifest-digest': dg(9),
    'containerd.io/snapshot/cri.image-layers': `${dg(2)},${dg(3)}`,
  });
  t.throws(() => criLayerLabels({ imageRef: 'x', manifestDigest: dg(9), layerDigests: layers, index: 3, chainId: dg(7) }), RangeError);
});

t.test('cri.image-layers is cut at whole digests to fit 4096 bytes with its key', async (t) => {
  const many = Array.from({ length: 100 }, (_, i) => dg(i));
  const value = imageLayersLabelValue(many);
  t.ok(labelFits(LABEL_CRI_IMAGE_LAYERS, value));
  const keyLen = LABEL_CRI_IMAGE_LAYERS.length;
  const n = value.split(',').length;
  // each digest is 71 bytes, plus a comma between two
  t.equal(n, Math.floor((MAX_LABEL_BYTES - keyLen + 1) / 72));
  t.ok(Buffer.byteLength(LABEL_CRI_IMAGE_LAYERS) + value.length + 72 > MAX_LABEL_BYTES, 'one more digest would not fit');
  t.same(value.split(','), many.slice(0, n), 'leading digests kept in order');
  for (const d of value.split(',')) t.match(d, /^sha256:[0-9a-f]{64}$/);
});

t.test('a short list is kept whole; an empty list is empty', async (t) => {
  t.equal(imageLayersLabelValue([dg(1)]), dg(1));
  t.equal(imageLayersLabelValue([]), '');
});

t.test('gc labels', async (t) => {
  t.same(manifestGcLabels(dg(1), [dg(2), dg(3)]), {
    'containerd.io/gc.ref.content.config': dg(1),
    'containerd.io/gc.ref.content.l.0': dg(2),
    'containerd.io/gc.ref.content.l.1': dg(3),
  });
  t.same(indexGcLabels([dg(4)]), { 'containerd.io/gc.ref.content.m.0': dg(4) });
  t.equal(gcRefSnapshotLabel('clip'), 'containerd.io/gc.ref.snapshot.clip');
});

t.test('extract keys look like containerd unpacker keys', async (t) => {
  t.equal(extractKey(dg(5), 123n, 'AbC_'), `extract-123-AbC_ ${dg(5)}`);
});

t.test('labelFits counts bytes of key and value', async (t) => {
  t.ok(labelFits('k', 'v'.repeat(MAX_LABEL_BYTES - 1)));
  t.notOk(labelFits('k', 'v'.repeat(MAX_LABEL_BYTES)));
  t.notOk(labelFits('k', 'é'.repeat(MAX_LABEL_BYTES / 2)), 'multi-byte characters count as bytes');
});
