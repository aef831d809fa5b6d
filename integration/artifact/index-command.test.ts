/**
 * `clip-snapshotter index` against a real docker-registry (distribution 2.8.2, which has no
 * referrers API, so discovery goes through the `sha256-<hex>` tag): push, discover from the image
 * reference alone, reproduce every file of every layer, re-run without writing, multi-platform.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import t, { type Test } from 'tap';
import { CLIP_INDEX_ARTIFACT_TYPE, findImageIndexes, findLayerIndex } from '../../snapshotter/src/artifact/index.js';
import { decodeIndex } from '../../snapshotter/src/clip/index.js';
import { RegistryClient, referrersTag } from '../../snapshotter/src/registry/index.js';
import { verifyAgainstExtraction, extract } from '../clip/verify-layer.js';
import { createHarness } from '../harness/index.js';
import { buildAndPushImages, type PushedImage } from '../images/index.js';
import { pushTwoPlatformIndex } from '../pull/push-index.js';
import { runIndex, writeRequests, type IndexSummary, type ManifestSummary } from './run-index.js';

const h = createHarness(t);
const registry = await h.startRegistry();
const images = await buildAndPushImages(registry);
const client = new RegistryClient({ plainHttp: true });
t.teardown(() => client.close());
const work = join(h.root, 'artifact');

const repoOf = (img: PushedImage): string => img.ref.slice(0, img.ref.lastIndexOf(':'));

async function configDiffIds(img: PushedImage): Promise<string[]> {
  const bytes = await client.fetchBlobBytes(repoOf(img), img.configDigest);
  return (JSON.parse(bytes.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids;
}

async function indexOk(t: Test, args: string[]): Promise<IndexSummary> {
  const res = await runIndex([...args, '--plain-http']);
  t.equal(res.code, 0, `index ${args.join(' ')} exits 0${res.code === 0 ? '' : `: ${res.stderr}`}`);
  t.notMatch(res.stderr, /\x1b\[/, 'no progress bar without a terminal');
  return JSON.parse(res.stdout) as IndexSummary;
}

/** Download a layer from the registry and gunzip it into a tar file. */
async function layerTar(img: PushedImage, digest: string): Promise<string> {
  const path = join(work, `${digest.slice(7, 23)}.tar`);
  const blob = await client.fetchBlob(repoOf(img), digest);
  await pipeline(blob.stream, createGunzip(), createWriteStream(path));
  return path;
}

const first: Record<string, IndexSummary> = {};

t.before(() => void mkdirSync(work, { recursive: true }));

for (const name of ['tricky', 'busybox'] as const) {
  t.test(`index ${name}: one artifact, every layer's diffID as in the image config`, async (t) => {
    const img = images[name];
    const s = await indexOk(t, [img.ref]);
    first[name] = s;
    t.equal(s.subject, img.manifestDigest);
    t.ok(s.pushed);
    t.same(s.layers.map((l) => l.digest), img.layers.map((l) => l.digest));
    t.same(s.layers.map((l) => l.diffId), await configDiffIds(img));
    t.ok(s.layers.every((l) => !l.reused && l.entries > 1 && l.indexBytes > 0));
  });

  t.test(`${name}: discoverable from the reference alone, and every file reproduced`, async (t) => {
    const img = images[name];
    const fresh = new RegistryClient({ plainHttp: true });
    t.teardown(() => fresh.close());
    const listing = await findImageIndexes(fresh, img.ref);
    t.equal(listing.subject.digest, img.manifestDigest);
    t.same(listing.artifacts.map((a) => a.digest), [first[name]?.artifact]);
    t.ok(listing.layers.every((l) => l.index !== undefined), 'every layer has a published index');
    const diffIds = await configDiffIds(img);
    for (const [i, layer] of img.layers.entries()) {
      const bytes = await findLayerIndex(fresh, repoOf(img), img.manifestDigest, layer.digest);
      if (!t.ok(bytes, `layer ${i} index found`) || bytes === undefined) continue;
      const reader = decodeIndex(bytes);
      t.equal(reader.meta.diffId, diffIds[i], `layer ${i} diffID`);
      t.equal(reader.meta.compressedDigest, layer.digest);
      const tarPath = await layerTar(img, layer.digest);
      const root = join(work, `${name}-${i}`);
      mkdirSync(root);
      extract(tarPath, root);
      const files = verifyAgainstExtraction(t, reader, tarPath, root);
      t.ok(files > 0, `layer ${i}: ${files} regular files compared byte for byte`);
    }
  });
}

t.test('the artifact is found through the referrers tag fallback', async (t) => {
  const img = images.tricky;
  const api = await fetch(`${registry.url}/v2/clip-test/tricky/referrers/${img.manifestDigest}`);
  t.equal(api.status, 404, 'distribution 2.8.2 has no referrers API');
  const res = await fetch(`${registry.url}/v2/clip-test/tricky/manifests/${referrersTag(img.manifestDigest)}`, { headers: { accept: 'application/vnd.oci.image.index.v1+json' } });
  t.equal(res.status, 200);
  const index = (await res.json()) as { manifests: Array<{ digest: string; artifactType?: string }> };
  t.same(index.manifests.map((m) => [m.digest, m.artifactType]), [[first.tricky?.artifact, CLIP_INDEX_ARTIFACT_TYPE]]);
});

t.test('running again reuses everything and writes nothing to the registry', async (t) => {
  const before = writeRequests(registry.logPath).length;
  t.ok(before > 0, 'the access log records writes');
  for (const name of ['tricky', 'busybox'] as const) {
    const s = await indexOk(t, [images[name].ref, '--concurrency', '1']);
    t.notOk(s.pushed);
    t.equal(s.artifact, first[name]?.artifact);
    t.ok(s.layers.every((l) => l.reused));
    t.same(s.layers.map((l) => [l.diffId, l.entries, l.indexBytes]), first[name]?.layers.map((l) => [l.diffId, l.entries, l.indexBytes]));
  }
  t.same(writeRequests(registry.logPath).slice(before), [], 'no PUT, POST or PATCH');
});

t.test('multi-platform: --platform picks one manifest, --all-platforms does each', async (t) => {
  const { busybox, tricky } = images;
  await pushTwoPlatformIndex(registry.url, 'clip-test/busybox', 'clip-test/tricky', busybox, tricky, 'multi');
  const multi = `${repoOf(busybox)}:multi`;
  const arm = await indexOk(t, [multi, '--platform', 'linux/arm64']);
  t.equal(arm.subject, tricky.manifestDigest, 'the arm64 entry');
  t.ok(arm.pushed, 'a new artifact in this repository');
  const all = JSON.parse((await runIndex([multi, '--all-platforms', '--plain-http'])).stdout) as { manifests: ManifestSummary[] };
  t.same(all.manifests.map((m) => [m.platform, m.subject, m.pushed]), [
    ['linux/arm64', tricky.manifestDigest, false],
    ['linux/amd64', busybox.manifestDigest, false],
  ]);
  const listing = await findImageIndexes(client, multi, { platform: 'linux/arm64' });
  t.ok(listing.layers.length === tricky.layers.length && listing.layers.every((l) => l.index !== undefined));
});

t.test('exit codes: 2 for usage, 1 for a missing image', async (t) => {
  for (const args of [[], ['a', 'b'], [images.busybox.ref, '--concurrency', '0'], [images.busybox.ref, '--platform', 'linux/amd64', '--all-platforms'], [images.busybox.ref, '--bogus']]) {
    const res = await runIndex(args);
    t.equal(res.code, 2, `${JSON.stringify(args)} → 2`);
    t.match(res.stderr, /usage: clip-snapshotter index/);
  }
  const missing = await runIndex([`${registry.host}/clip-test/nothing:here`, '--plain-http']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /not found/);
  t.equal(missing.stdout, '');
});
