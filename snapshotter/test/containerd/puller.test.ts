import t from 'tap';
import { createHash } from 'node:crypto';
import { chainIds, pullImage, type ContainerdMount, type ImageSource, type PullClient } from '../../src/containerd/index.js';
import { alreadyExists, notFound, type ClipError } from '../../src/errors/index.js';

const sha = (b: string | Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

function fixture(n = 3) {
  const diffIds = Array.from({ length: n }, (_, i) => sha(`diff-${i}`));
  const blobs = Array.from({ length: n }, (_, i) => Buffer.from(`layer-${i}`));
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: blobs.map((b) => ({ mediaType: LAYER, digest: sha(b), size: b.length })),
  }));
  const source: ImageSource = {
    host: 'reg.test:5000',
    repository: 'team/app',
    getManifest: async () => ({ digest: sha(manifest), mediaType: 'application/vnd.oci.image.manifest.v1+json', bytes: manifest }),
    getBlob: async (d) => (d === sha(config) ? config : Promise.reject(notFound('CLIP_CONTAINERD_NOT_FOUND', d))),
    openBlob: async function* (d) {
      const b = blobs.find((x) => sha(x) === d);
      if (b) yield b;
    },
  };
  return { diffIds, chains: chainIds(diffIds), layerDigests: blobs.map(sha), config, manifest, source };
}

type Behaviour = 'present' | 'lazy' | 'full';

function fakeClient(modes: Behaviour[], chains: string[], opts: { applied?: (i: number) => string; imageExists?: boolean; raceOnce?: boolean; order?: string[] } = {}) {
  const snapshots = new Set<string>();
  modes.forEach((m, i) => m === 'present' && snapshots.add(chains[i] as string));
  const calls: Record<string, unknown[][]> = {};
  const rec = (name: string, ...args: unknown[]): void => {
    (calls[name] ??= []).push(args);
  };
  let raced = false;
  const client: PullClient = {
    withLease: (id) => {
      rec('withLease', id);
      return client;
    },
    createLease: async (o) => {
      rec('createLease', o);
      return 'lease-1';
    },
    deleteLease: async (id) => rec('deleteLease', id),
    writeContent: async (o) => {
      rec('writeContent', o.digest, o.labels);
      opts.order?.push(`write ${o.digest}`);
      return { written: true };
    },
    updateContentLabels: async (d, l) => {
      rec('updateContentLabels', d, l);
      return { digest: d, size: 0, labels: l };
    },
    createImage: async (img) => {
      rec('createImage', img);
      if (opts.imageExists) throw alreadyExists('CLIP_CONTAINERD_ALREADY_EXISTS', img.name);
      return img;
    },
    updateImage: async (img) => {
      rec('updateImage', img);
      return img;
    },
    statSnapshot: async (_sn, key) => {
      opts.order?.push(`stat ${chains.indexOf(key)}`);
      // Answered a turn of the event loop later, as a round trip would be.
      await new Promise((r) => setImmediate(r));
      opts.order?.push(`stat ${chains.indexOf(key)} answered`);
      if (!snapshots.has(key)) throw notFound('CLIP_CONTAINERD_NOT_FOUND', key);
      return { name: key, parent: '', kind: 'committed', labels: {} };
    },
    prepareSnapshot: async (sn, key, parent, labels) => {
      rec('prepareSnapshot', sn, key, parent, labels);
      const i = chains.indexOf(labels?.['containerd.io/snapshot.ref'] ?? '');
      opts.order?.push(`prepare ${i}`);
      // containerd refuses a parent it does not have.
      if (parent !== '' && !snapshots.has(parent)) throw notFound('CLIP_CONTAINERD_NOT_FOUND', `parent ${parent}`);
      if (modes[i] === 'lazy') {
        if (opts.raceOnce && !raced) {
          raced = true;
        } else {
          snapshots.add(chains[i] as string);
        }
        throw alreadyExists('CLIP_CONTAINERD_ALREADY_EXISTS', key);
      }
      return [{ type: 'bind', source: `/s/${i}`, options: ['rw'] }] as ContainerdMount[];
    },
    commitSnapshot: async (sn, name, key, labels) => {
      rec('commitSnapshot', sn, name, key, labels);
      snapshots.add(name);
    },
    removeSnapshot: async (sn, key) => rec('removeSnapshot', sn, key),
    applyDiff: async (layer, mounts) => {
      rec('applyDiff', layer.digest, mounts);
      const i = Number(mounts[0]?.source.split('/').at(-1));
      return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: opts.applied?.(i) ?? '', size: 1 };
    },
  };
  return { client, calls };
}

t.test('lazy layers: Prepare with CRI labels, ALREADY_EXISTS, nothing downloaded', async (t) => {
  const f = fixture();
  const { client, calls } = fakeClient(['lazy', 'lazy', 'lazy'], f.chains);
  const s = await pullImage({ client, source: f.source, imageRef: 'reg.test:5000/team/app:v1', reference: 'v1', snapshotter: 'clip' });
  t.match(s, { lazy: 3, full: 0, present: 0, chainId: f.chains[2], manifest: sha(f.manifest), config: sha(f.config) });
  const prepares = calls.prepareSnapshot ?? [];
  t.equal(prepares.length, 3);
  prepares.forEach(([sn, key, parent, labels], i) => {
    t.equal(sn, 'clip');
    t.match(key, new RegExp(`^extract-\\d+-[A-Za-z0-9_-]{4} ${f.chains[i]}$`));
    t.equal(parent, i === 0 ? '' : f.chains[i - 1]);
    t.same(labels, {
      'containerd.io/snapshot.ref': f.chains[i],
      'containerd.io/snapshot/cri.image-ref': 'reg.test:5000/team/app:v1',
      'containerd.io/snapshot/cri.layer-digest': f.layerDigests[i],
      'containerd.io/snapshot/cri.manifest-digest': sha(f.manifest),
      'containerd.io/snapshot/cri.image-layers': f.layerDigests.slice(i).join(','),
    });
  });
  t.same((calls.writeContent ?? []).map((c) => c[0]), [sha(f.config), sha(f.manifest)], 'only config and manifest written');
  t.same(calls.writeContent?.[1]?.[1], {
    'containerd.io/distribution.source.reg.test:5000': 'team/app',
    'containerd.io/gc.ref.content.config': sha(f.config),
    'containerd.io/gc.ref.content.l.0': f.layerDigests[0],
    'containerd.io/gc.ref.content.l.1': f.layerDigests[1],
    'containerd.io/gc.ref.content.l.2': f.layerDigests[2],
  });
  t.equal(calls.applyDiff, undefined);
  t.same(calls.updateContentLabels, [[sha(f.config), { 'containerd.io/gc.ref.snapshot.clip': f.chains[2] }]]);
  t.match(calls.createImage?.[0]?.[0], { name: 'reg.test:5000/team/app:v1', target: { digest: sha(f.manifest), size: f.manifest.length } });
  t.same(calls.withLease, [['lease-1']]);
  t.same(calls.deleteLease, [['lease-1']]);
  t.match(calls.createLease?.[0]?.[0], { expireAfterMs: Number });
});

t.test('present, lazy and full layers in one image', async (t) => {
  const f = fixture();
  const { client, calls } = fakeClient(['present', 'lazy', 'full'], f.chains, { applied: (i) => f.diffIds[i] as string, imageExists: true });
  const events: string[] = [];
  const s = await pullImage({ client, source: f.source, imageRef: 'r', reference: 'v1', snapshotter: 'clip', onLayer: (l) => events.push(l.mode) });
  t.same(s.layers.map((l) => l.mode), ['present', 'lazy', 'full']);
  t.same(events, ['present', 'lazy', 'full']);
  t.equal(calls.prepareSnapshot?.length, 2, 'no Prepare for a present layer');
  t.same(calls.writeContent?.[2], [f.layerDigests[2], { 'containerd.io/distribution.source.reg.test:5000': 'team/app', 'containerd.io/uncompressed': f.diffIds[2] }]);
  t.same(calls.applyDiff?.[0]?.[0], f.layerDigests[2]);
  const key = calls.prepareSnapshot?.[1]?.[1];
  t.match(calls.commitSnapshot?.[0], ['clip', f.chains[2], key]);
  t.equal(calls.updateImage?.length, 1, 'an existing image record is updated');
  const p = s.phases_ms;
  t.equal(p.layers.length, 3, 'one timing per layer');
  const all = [p.lease, p.resolve, p.config, p.content, ...p.layers, p.image];
  t.ok(all.every((v) => Number.isInteger(v) && v >= 0), 'phase timings are whole ms');
  // Phases overlap (lease beside manifest, content writes beside the layers), so their sum may
  // exceed the pull; each one still lies within it.
  t.ok(all.every((v) => v <= s.duration_ms), 'each phase fits in the pull');
  t.equal(p.prepare_rpcs.length, 2, 'one Prepare timing per Prepare sent');
  t.equal(p.prepare_rpcs_cpu.length, 2, 'and one CPU time per Prepare');
  t.ok(Object.values(p.cpu).every((v) => v >= 0 && v <= s.cpu_ms + 1), 'each window\'s CPU time fits in the pull\'s');
  t.ok(p.prepare_rpcs.every((v) => v >= 0 && v <= s.duration_ms), 'each Prepare fits in the pull');
  t.ok(Number.isInteger(s.cpu_ms) && s.cpu_ms >= 0, 'the command\'s CPU time is reported');
});

t.test('a diff that unpacks to the wrong diff id fails, removes the key and drops the lease', async (t) => {
  const f = fixture(1);
  const { client, calls } = fakeClient(['full'], f.chains, { applied: () => sha('wrong') });
  const err = await pullImage({ client, source: f.source, imageRef: 'r', reference: 'v1', snapshotter: 'overlayfs' }).then(() => undefined, (e: unknown) => e as ClipError);
  t.match(err, { kind: 'data_corrupt', code: 'CLIP_PULL_DIFF_ID_MISMATCH' });
  t.equal(calls.removeSnapshot?.[0]?.[1], calls.prepareSnapshot?.[0]?.[1]);
  t.equal(calls.commitSnapshot, undefined);
  t.equal(calls.createImage, undefined);
  t.same(calls.deleteLease, [['lease-1']]);
});

t.test('ALREADY_EXISTS without the target in place retries with a fresh key', async (t) => {
  const f = fixture(1);
  const { client, calls } = fakeClient(['lazy'], f.chains, { raceOnce: true });
  const s = await pullImage({ client, source: f.source, imageRef: 'r', reference: 'v1', snapshotter: 'clip' });
  t.equal(s.lazy, 1);
  t.equal(calls.prepareSnapshot?.length, 2);
  t.not(calls.prepareSnapshot?.[0]?.[1], calls.prepareSnapshot?.[1]?.[1]);
});

t.test('manifest and config disagreeing on the layer count is refused', async (t) => {
  const f = fixture(2);
  const { client } = fakeClient(['full', 'full'], f.chains);
  const badConfig = Buffer.from(JSON.stringify({ rootfs: { diff_ids: [f.diffIds[0]] } }));
  const source: ImageSource = { ...f.source, getBlob: async () => badConfig };
  const err = await pullImage({ client, source, imageRef: 'r', reference: 'v1', snapshotter: 'clip' }).then(() => undefined, (e: unknown) => e);
  t.match(err, { code: 'CLIP_PULL_LAYER_COUNT' });
});

t.test("a lazy layer's Stat runs beside the next layer's Prepare; layers are still reported in order", async (t) => {
  const f = fixture();
  const order: string[] = [];
  const { client } = fakeClient(['lazy', 'lazy', 'lazy'], f.chains, { order });
  const events: number[] = [];
  const s = await pullImage({ client, source: f.source, imageRef: 'r', reference: 'v1', snapshotter: 'clip', onLayer: (l) => events.push(l.index) });
  t.equal(s.lazy, 3);
  t.same(events, [0, 1, 2]);
  const at = (e: string): number => order.indexOf(e);
  // After the first batch of Stats: Prepare 0, then its Stat and Prepare 1 side by side, ...
  t.ok(at('prepare 1') < order.lastIndexOf('stat 0 answered'), `Prepare 1 before Stat 0 answered: ${order.join(', ')}`);
  t.ok(at('prepare 2') < order.lastIndexOf('stat 1 answered'), 'Prepare 2 before Stat 1 answered');
  t.ok(order.lastIndexOf('stat 2') > at('prepare 2'), 'the last layer is still confirmed');
});

t.test('a lazy layer found missing after its ALREADY_EXISTS is prepared again, and the layer above with it', async (t) => {
  const f = fixture();
  // Layer 0's first ALREADY_EXISTS leaves no target: its Stat says so while layer 1's Prepare fails on the missing parent.
  const { client, calls } = fakeClient(['lazy', 'lazy', 'lazy'], f.chains, { raceOnce: true });
  const events: string[] = [];
  const s = await pullImage({ client, source: f.source, imageRef: 'r', reference: 'v1', snapshotter: 'clip', onLayer: (l) => events.push(`${l.index} ${l.mode}`) });
  t.same(events, ['0 lazy', '1 lazy', '2 lazy']);
  t.equal(s.chainId, f.chains[2]);
  const refs = (calls.prepareSnapshot ?? []).map((c) => f.chains.indexOf((c[3] as Record<string, string>)['containerd.io/snapshot.ref'] ?? ''));
  t.same(refs, [0, 1, 0, 1, 2], 'layer 0 again, then layer 1 again');
});

t.test("the content writes start once the first layer's Prepare was sent, and are done before the image record", async (t) => {
  const f = fixture();
  const order: string[] = [];
  const { client, calls } = fakeClient(['lazy', 'lazy', 'lazy'], f.chains, { order });
  const s = await pullImage({ client, source: f.source, imageRef: 'reg.test:5000/team/app:v1', reference: 'v1', snapshotter: 'clip' });
  t.equal(s.lazy, 3);
  const firstWrite = order.findIndex((e) => e.startsWith('write '));
  t.ok(firstWrite > order.indexOf('prepare 0'), `no write before the first Prepare (${order.join(', ')})`);
  t.ok(order.slice(0, order.indexOf('prepare 0')).every((e) => e.startsWith('stat ')), 'only the Stats before it');
  t.same(order.filter((e) => e.startsWith('write ')).sort(), [`write ${sha(f.config)}`, `write ${sha(f.manifest)}`].sort(), 'config and manifest written');
  t.equal(calls.createImage?.length, 1);
});

t.test('an image whose layers are all present still gets its content written', async (t) => {
  const f = fixture(2);
  const { client, calls } = fakeClient(['present', 'present'], f.chains);
  const s = await pullImage({ client, source: f.source, imageRef: 'reg.test:5000/team/app:v1', reference: 'v1', snapshotter: 'clip' });
  t.equal(s.present, 2);
  t.equal(calls.prepareSnapshot, undefined, 'nothing prepared');
  t.same((calls.writeContent ?? []).map((c) => c[0]).sort(), [sha(f.config), sha(f.manifest)].sort());
});
