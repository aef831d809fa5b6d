/**
 * Issue 15, deliverable 4 (pull latency): what a cold pull's first Prepare waits for. Its own index
 * look-up runs alone — the look-ups of the layers above start once it has settled — and the
 * index's write to the local cache runs beside the mount instead of before it (reads of the cache
 * wait for it), while a failed write is reported (it fails the mount: a restart re-mounts from
 * that cache).
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { buildIndex, decodeIndex, encodeIndex } from '../../src/clip/index.js';
import { silentLogger } from '../../src/log/index.js';
import { ClipRemoteLayers, IndexResolver, indexDigestOf, type IndexRequest, type ResolvedIndex } from '../../src/remote/index.js';
import { LABEL_CRI_IMAGE_LAYERS, LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_CRI_MANIFEST_DIGEST, LABEL_SNAPSHOT_REF } from '../../src/remote/layer-labels.js';
import { member, tar } from '../clip/tar-fixtures.js';
import { BlobOnlyCache } from '../storage/range-fixtures.js';
import { tempDir } from '../storage/fixtures.js';

async function layerIndex(name: string): Promise<{ digest: string; bytes: Buffer }> {
  const blob = gzipSync(tar(member({ name, mode: 0o644 }, `${name}\n`)));
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  return { digest, bytes: encodeIndex(await buildIndex(Readable.from([blob]), { compressedDigest: digest })) };
}

const d = (i: number): string => `sha256:${i.toString(16).padStart(64, '0')}`;

t.test("the layers above are looked up only once the Prepare's own index look-up has settled", async (t) => {
  const own = await layerIndex('own');
  const index = decodeIndex(own.bytes);
  let release!: (r: ResolvedIndex) => void;
  const gate = new Promise<ResolvedIndex>((r) => (release = r));
  const events: string[] = [];
  const prefetched: IndexRequest[][] = [];
  const layers = new ClipRemoteLayers({
    // Opening the layer fails: this test is about what happens before the mount.
    store: { open: () => { throw new Error('no store in this test'); } },
    indexes: {
      resolve: async () => {
        events.push('resolve');
        return gate;
      },
      local: async () => undefined,
      prefetch: (reqs) => {
        events.push('prefetch');
        prefetched.push([...reqs]);
      },
    },
    defaultNamespace: 'default',
  });
  const labels = {
    [LABEL_SNAPSHOT_REF]: index.meta.diffId,
    [LABEL_CRI_IMAGE_REF]: 'registry.test/app:1',
    [LABEL_CRI_LAYER_DIGEST]: own.digest,
    [LABEL_CRI_MANIFEST_DIGEST]: d(9),
    [LABEL_CRI_IMAGE_LAYERS]: [own.digest, d(1), d(2)].join(','),
  };
  const mounting = layers.mount('/nonexistent/clip-test/fs', labels, { key: 'default/1/extract-x', log: silentLogger(), restore: false, parent: '' });
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  t.same(events, ['resolve'], 'nothing looked up ahead while the own look-up runs');
  release({ index, bytes: own.bytes, source: 'artifact', digest: indexDigestOf(own.bytes), trusted: false });
  await t.rejects(mounting, /no store in this test/);
  t.same(events, ['resolve', 'prefetch'], 'looked up ahead once it settled');
  t.same(prefetched[0]?.map((r) => r.layerDigest), [d(1), d(2)], 'the layers above, same manifest');
  t.equal(prefetched[0]?.[0]?.manifestDigest, d(9));
});

t.test('a failed own look-up still starts the look-ups of the layers above', async (t) => {
  const events: string[] = [];
  const layers = new ClipRemoteLayers({
    store: { open: () => { throw new Error('unreachable'); } },
    indexes: {
      resolve: async () => {
        events.push('resolve');
        throw new Error('registry down');
      },
      local: async () => undefined,
      prefetch: () => void events.push('prefetch'),
    },
    defaultNamespace: 'default',
  });
  const labels = {
    [LABEL_SNAPSHOT_REF]: d(5),
    [LABEL_CRI_IMAGE_REF]: 'registry.test/app:1',
    [LABEL_CRI_LAYER_DIGEST]: d(6),
    [LABEL_CRI_IMAGE_LAYERS]: [d(6), d(7)].join(','),
  };
  await t.rejects(layers.mount('/nonexistent/clip-test/fs', labels, { key: 'default/1/extract-y', log: silentLogger(), restore: false, parent: '' }), /registry down/);
  t.same(events, ['resolve', 'prefetch']);
});

t.test('resolve answers before the local cache write; `saved` reports the write', async (t) => {
  const own = await layerIndex('saved');
  const dir = await tempDir(t);
  const resolverAt = (cacheDir: string): IndexResolver => new IndexResolver({
    cacheDir,
    contentCache: new BlobOnlyCache(),
    registry: { fetchBlob: async () => { throw new Error('no download in this test'); } },
    buildMissing: false,
    findArtifact: async (req) => (req.layerDigest === own.digest ? own.bytes : undefined),
  });

  const good = resolverAt(join(dir, 'indexes'));
  const r = await good.resolve({ imageRef: 'registry.test/app:1', layerDigest: own.digest });
  t.equal(r.source, 'artifact');
  t.ok(r.saved, 'a look-up that found the index elsewhere says when it is cached');
  // Read at once, the write maybe still running: the read waits for it rather than miss.
  const local = await good.local(own.digest);
  t.equal(local?.digest, indexDigestOf(own.bytes), 'in the local cache, read right after the look-up');
  t.equal(local?.saved, undefined, 'an index read from the local cache has nothing to save');
  await r.saved;

  // A cache directory that cannot be created: the look-up still answers, the write fails.
  const blocked = join(dir, 'a-file');
  await writeFile(blocked, 'not a directory');
  const bad = resolverAt(join(blocked, 'indexes'));
  const r2 = await bad.resolve({ imageRef: 'registry.test/app:1', layerDigest: own.digest });
  t.equal(r2.digest, indexDigestOf(own.bytes));
  await t.rejects(r2.saved!, { code: 'ENOTDIR' }, 'the failed write is reported through `saved`');
});
