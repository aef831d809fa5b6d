import t from 'tap';
import { createHash } from 'node:crypto';
import { ContentStoreLayerResolver, chainIds, distributionSource, type ContentInfo } from '../../src/containerd/index.js';
import { notFound } from '../../src/errors/index.js';

const sha = (b: string | Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function image(seed: string, layers: number) {
  const diffIds = Array.from({ length: layers }, (_, i) => sha(`${seed}-diff-${i}`));
  const layerDigests = Array.from({ length: layers }, (_, i) => sha(`${seed}-blob-${i}`));
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    config: { digest: sha(config), size: config.length },
    layers: layerDigests.map((digest) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: 10 })),
  }));
  return { diffIds, layerDigests, config, manifest, configDigest: sha(config), manifestDigest: sha(manifest) };
}

function fakeStore() {
  const blobs = new Map<string, Buffer>();
  const infos: ContentInfo[] = [];
  const calls = { list: 0, filters: [] as string[][] };
  return {
    blobs, infos, calls,
    add(img: ReturnType<typeof image>, labels: Record<string, string>, withConfig = true) {
      blobs.set(img.manifestDigest, img.manifest);
      if (withConfig) blobs.set(img.configDigest, img.config);
      infos.push({ digest: img.manifestDigest, size: img.manifest.length, labels: { 'containerd.io/gc.ref.content.config': img.configDigest, ...labels } });
    },
    client: {
      listContent: async (filters: string[] = []) => {
        calls.list++;
        calls.filters.push(filters);
        await new Promise((r) => setImmediate(r)); // answer asynchronously, as containerd does
        return [...infos];
      },
      readContent: async (digest: string) => {
        const b = blobs.get(digest);
        if (!b) throw notFound('CLIP_CONTAINERD_NOT_FOUND', digest);
        return b;
      },
    },
  };
}

t.test('resolves a chain id to its layer, repository and manifest', async (t) => {
  const store = fakeStore();
  const img = image('a', 3);
  store.add(img, { 'containerd.io/distribution.source.127.0.0.1:5000': 'lib/busybox' });
  const r = new ContentStoreLayerResolver({ client: store.client });
  const chains = chainIds(img.diffIds);
  const got = await r.resolve(chains[1] as string);
  t.match(got, {
    chainId: chains[1], host: '127.0.0.1:5000', repository: 'lib/busybox', layerDigest: img.layerDigests[1], diffId: img.diffIds[1],
    index: 1, manifestDigest: img.manifestDigest, configDigest: img.configDigest, ref: `127.0.0.1:5000/lib/busybox@${img.manifestDigest}`,
    layerMediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', layerSize: 10,
  });
  t.same(got?.layerDigests, img.layerDigests);
  t.same(store.calls.filters[0], ['labels."containerd.io/gc.ref.content.config"']);
  await r.resolve(chains[2] as string);
  t.equal(store.calls.list, 1, 'other chain ids of a scanned manifest are cached');
});

t.test('unknown chain ids rescan; new images are found later', async (t) => {
  const store = fakeStore();
  const r = new ContentStoreLayerResolver({ client: store.client });
  const img = image('b', 2);
  const top = chainIds(img.diffIds)[1] as string;
  t.equal(await r.resolve(top), undefined);
  store.add(img, { 'containerd.io/distribution.source.docker.io': 'library/alpine,library/other' });
  t.equal((await r.resolve(top))?.repository, 'library/alpine');
  t.equal(store.calls.list, 2);
});

t.test('manifests without a source label or with a missing config are skipped, the latter retried', async (t) => {
  const store = fakeStore();
  const noSource = image('c', 1);
  const noConfig = image('d', 1);
  store.add(noSource, {});
  store.add(noConfig, { 'containerd.io/distribution.source.reg': 'x' }, false);
  const r = new ContentStoreLayerResolver({ client: store.client });
  t.equal(await r.resolve(noSource.diffIds[0] as string), undefined);
  t.equal(await r.resolve(noConfig.diffIds[0] as string), undefined);
  store.blobs.set(noConfig.configDigest, noConfig.config);
  t.equal((await r.resolve(noConfig.diffIds[0] as string))?.layerDigest, noConfig.layerDigests[0]);
});

t.test('concurrent misses share one scan', async (t) => {
  const store = fakeStore();
  const img = image('e', 2);
  store.add(img, { 'containerd.io/distribution.source.reg': 'x' });
  const r = new ContentStoreLayerResolver({ client: store.client });
  const chains = chainIds(img.diffIds);
  const [a, b] = await Promise.all([r.resolve(chains[0] as string), r.resolve(chains[1] as string)]);
  t.equal(a?.index, 0);
  t.equal(b?.index, 1);
  t.equal(store.calls.list, 1);
});

t.test('distributionSource picks the first repository', async (t) => {
  t.same(distributionSource({ foo: 'bar', 'containerd.io/distribution.source.h:1': 'a/b,c/d' }), { host: 'h:1', repository: 'a/b' });
  t.equal(distributionSource({ foo: 'bar' }), undefined);
});
