import t from 'tap';
import { layerHintFromLabels } from '../../src/remote/layer-labels.js';

const D = `sha256:${'a'.repeat(64)}`;
const M = `sha256:${'b'.repeat(64)}`;

t.test('no snapshot.ref: not an image layer', async (t) => {
  t.equal(layerHintFromLabels({}), undefined);
  t.equal(layerHintFromLabels({ 'containerd.io/snapshot/cri.image-ref': 'x' }), undefined);
});

t.test('CRI labels', async (t) => {
  t.same(
    layerHintFromLabels({
      'containerd.io/snapshot.ref': 'sha256:c',
      'containerd.io/snapshot/cri.image-ref': 'docker.io/library/alpine:latest',
      'containerd.io/snapshot/cri.layer-digest': D,
      'containerd.io/snapshot/cri.manifest-digest': M,
    }),
    { type: 'known', source: 'cri', chainId: 'sha256:c', imageRef: 'docker.io/library/alpine:latest', layerDigest: D, manifestDigest: M },
  );
});

t.test('stargz labels', async (t) => {
  const h = layerHintFromLabels({
    'containerd.io/snapshot.ref': 'sha256:c',
    'containerd.io/snapshot/remote/stargz.reference': '127.0.0.1:5000/busybox:1',
    'containerd.io/snapshot/remote/stargz.digest': D,
  });
  t.match(h, { type: 'known', source: 'stargz', imageRef: '127.0.0.1:5000/busybox:1', layerDigest: D });
});

t.test('only snapshot.ref: resolve through the content store', async (t) => {
  t.same(layerHintFromLabels({ 'containerd.io/snapshot.ref': 'sha256:c' }), { type: 'chain_only', chainId: 'sha256:c' });
});

t.test('malformed labels are invalid arguments naming the label', async (t) => {
  t.throws(
    () => layerHintFromLabels({ 'containerd.io/snapshot.ref': 'c', 'containerd.io/snapshot/cri.image-ref': 'r', 'containerd.io/snapshot/cri.layer-digest': 'sha256:zz' }),
    { code: 'CLIP_LABEL_BAD_DIGEST', message: /cri\.layer-digest/ },
  );
  t.throws(() => layerHintFromLabels({ 'containerd.io/snapshot.ref': 'c', 'containerd.io/snapshot/cri.image-ref': 'r' }), {
    code: 'CLIP_LABEL_INCOMPLETE',
  });
  t.throws(
    () => layerHintFromLabels({ 'containerd.io/snapshot.ref': 'c', 'containerd.io/snapshot/cri.image-ref': 'a b', 'containerd.io/snapshot/cri.layer-digest': D }),
    { code: 'CLIP_LABEL_BAD_REF' },
  );
});

t.test('clip.* labels are honoured only from this daemon\'s own record, never from a Prepare', async (t) => {
  // containerd copies manifest layer annotations starting containerd.io/snapshot/ into a Prepare's
  // labels: an image could name any layer of any repository here.
  const injected = {
    'containerd.io/snapshot.ref': 'sha256:c',
    'containerd.io/snapshot/clip.image-ref': 'private.example/secret/app:1',
    'containerd.io/snapshot/clip.layer-digest': M,
    'containerd.io/snapshot/cri.image-ref': 'docker.io/library/alpine:latest',
    'containerd.io/snapshot/cri.layer-digest': D,
  };
  t.match(layerHintFromLabels(injected), { source: 'cri', imageRef: 'docker.io/library/alpine:latest', layerDigest: D }, 'a Prepare uses CRI\'s labels');
  t.same(
    layerHintFromLabels({ 'containerd.io/snapshot.ref': 'sha256:c', 'containerd.io/snapshot/clip.image-ref': 'private.example/secret/app:1', 'containerd.io/snapshot/clip.layer-digest': M }),
    { type: 'chain_only', chainId: 'sha256:c' },
    'clip.* alone on a Prepare: resolved through the content store, as if absent',
  );
  t.match(layerHintFromLabels(injected, 'committed'), { source: 'clip', layerDigest: M }, 'a restart re-mounts from the recorded labels');
});
