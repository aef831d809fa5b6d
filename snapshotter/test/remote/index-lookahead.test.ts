/**
 * Issue 15, deliverable 4: the indexes of an image's upper layers are looked up while its first
 * layer is prepared (`IndexResolver.prefetch`), a few at a time, never by building; a Prepare
 * takes the result, unless its index was quarantined meanwhile; labels bound what is looked up.
 */
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { buildIndex, encodeIndex } from '../../src/clip/index.js';
import { IndexResolver, indexDigestOf } from '../../src/remote/index.js';
import { imageLayersFromLabels, LABEL_CRI_IMAGE_LAYERS, MAX_IMAGE_LAYERS } from '../../src/remote/layer-labels.js';
import { QuarantineList } from '../../src/storage/index.js';
import { member, tar } from '../clip/tar-fixtures.js';
import { BlobOnlyCache } from '../storage/range-fixtures.js';
import { tempDir } from '../storage/fixtures.js';

interface Layer { digest: string; blob: Buffer; index: Buffer }

async function layer(name: string): Promise<Layer> {
  const blob = gzipSync(tar(member({ name, mode: 0o644 }, `${name}\n`)));
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  return { digest, blob, index: encodeIndex(await buildIndex(Readable.from([blob]), { compressedDigest: digest })) };
}

/** A resolver whose artifact look-ups wait until `release()`; counts look-ups and registry fetches. */
async function fixture(t: Test, layers: Layer[], opts: { artifacts?: boolean } = {}) {
  const dir = await tempDir(t);
  const quarantine = QuarantineList.memory();
  const calls = { artifact: [] as string[], registry: 0, running: 0, maxRunning: 0 };
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const resolver = new IndexResolver({
    cacheDir: join(dir, 'indexes'),
    contentCache: new BlobOnlyCache(),
    registry: {
      fetchBlob: async (_repo, d) => {
        calls.registry++;
        const l = layers.find((x) => x.digest === d)!;
        return { stream: Readable.from([l.blob]), size: l.blob.length, offset: 0, length: l.blob.length };
      },
    },
    buildMissing: true,
    quarantine,
    findArtifact: async (req) => {
      calls.artifact.push(req.layerDigest);
      calls.running++;
      calls.maxRunning = Math.max(calls.maxRunning, calls.running);
      await gate;
      calls.running--;
      return opts.artifacts === false ? undefined : layers.find((x) => x.digest === req.layerDigest)?.index;
    },
  });
  return { resolver, quarantine, calls, release };
}

const reqOf = (l: Layer) => ({ imageRef: 'registry.test/app:1', layerDigest: l.digest });

/** Poll for a condition (event-loop turns, 5 s deadline). */
async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 2));
  }
}
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

t.test('a Prepare takes the look-up run ahead: one artifact look-up per layer, four at a time', async (t) => {
  const layers = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map(layer));
  const { resolver, calls, release } = await fixture(t, layers);
  resolver.prefetch(layers.map(reqOf));
  resolver.prefetch(layers.map(reqOf)); // a second Prepare's labels list the same layers
  await until(() => calls.running === 4);
  await turns(10);
  t.equal(calls.maxRunning, 4, 'four look-ups run at once, the rest wait');
  release();
  for (const l of layers) {
    const r = await resolver.resolve(reqOf(l));
    t.match(r, { source: 'artifact', trusted: false, digest: indexDigestOf(l.index) });
  }
  t.same([...calls.artifact].sort(), layers.map((l) => l.digest).sort(), 'each layer looked up once');
  t.equal(calls.registry, 0, 'nothing downloaded');
});

t.test('a look-up ahead never builds an index; the Prepare builds it when no source has it', async (t) => {
  const [a] = await Promise.all(['a'].map(layer));
  const { resolver, calls, release } = await fixture(t, [a!], { artifacts: false });
  release();
  resolver.prefetch([reqOf(a!)]);
  await until(() => calls.artifact.length === 1 && calls.running === 0);
  await turns(10);
  t.equal(calls.registry, 0, 'the look-up ahead did not download the layer');
  const r = await resolver.resolve(reqOf(a!));
  t.match(r, { source: 'built', trusted: true });
  t.equal(calls.registry, 1, 'the Prepare built it');
});

t.test('an index quarantined after its look-up ahead is not served', async (t) => {
  const [a] = await Promise.all(['a'].map(layer));
  const { resolver, quarantine, calls, release } = await fixture(t, [a!]);
  release();
  resolver.prefetch([reqOf(a!)]);
  quarantine.add({ kind: 'index', key: indexDigestOf(a!.index), layer: a!.digest, diffId: 'sha256:x', code: 'CLIP_INDEX_MISMATCH', reason: 'test' });
  const r = await resolver.resolve(reqOf(a!));
  t.match(r, { source: 'built', trusted: true }, 'resolved anew: cached and artifact copies refused, built here');
  t.equal(calls.registry, 1);
});

t.test('a Prepare that comes before its look-up ahead started runs it itself, once', async (t) => {
  const layers = await Promise.all(['a', 'b', 'c', 'd', 'e'].map(layer));
  const { resolver, calls, release } = await fixture(t, layers);
  resolver.prefetch(layers.map(reqOf));
  const last = resolver.resolve(reqOf(layers[4]!)); // queued behind four running look-ups
  release();
  t.match(await last, { source: 'artifact' });
  await Promise.all(layers.map((l) => resolver.resolve(reqOf(l))));
  t.equal(calls.artifact.filter((d) => d === layers[4]!.digest).length, 1, 'the queued look-up was not run a second time');
});

t.test('cri.image-layers: well-formed digests only, each once, bounded', async (t) => {
  const d = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;
  t.same(imageLayersFromLabels({}), []);
  t.same(imageLayersFromLabels({ [LABEL_CRI_IMAGE_LAYERS]: `${d(1)},nonsense,${d(2)},${d(1)},sha256:ABC` }), [d(1), d(2)]);
  const many = Array.from({ length: MAX_IMAGE_LAYERS + 10 }, (_, i) => d(i)).join(',');
  t.equal(imageLayersFromLabels({ [LABEL_CRI_IMAGE_LAYERS]: many }).length, MAX_IMAGE_LAYERS);
});
