import t from 'tap';
import {
  ANNOTATION_LAYER_DIFF_ID, ANNOTATION_LAYER_DIGEST, CLIP_INDEX_ARTIFACT_TYPE, CLIP_INDEX_MEDIA_TYPE, buildImageIndexes, findImageIndexes,
  indexImage, listPlatformManifests, pushIndexArtifact, type IndexProgress,
} from '../../src/artifact/index.js';
import { decodeIndex } from '../../src/clip/index.js';
import type { ImageManifest } from '../../src/registry/index.js';
import { rejectsClipError } from '../clip/tar-fixtures.js';
import { FakeRegistry, fakeLayer } from './fake-registry.js';
import { until } from '../storage/fixtures.js';

const REF = 'registry.test/app:latest';
const layers = [fakeLayer('a.txt', 'alpha'), fakeLayer('b.txt', 'bravo'), fakeLayer('c.txt', 'charlie')];

t.test('builds every layer, decodable, with the diffIDs of the config, and reports progress', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const events: IndexProgress[] = [];
  const out = await buildImageIndexes(reg, REF, { onProgress: (e) => events.push(e) });
  t.equal(out.subject.digest, subject.digest);
  t.equal(out.repo, 'registry.test/app');
  t.equal(out.complete, undefined, 'nothing published yet');
  t.same(out.layers.map((l) => [l.digest, l.diffId, l.reused]), layers.map((l) => [l.digest, l.diffId, false]));
  for (const [i, l] of out.layers.entries()) {
    const r = decodeIndex(l.index);
    t.equal(r.meta.diffId, layers[i]?.diffId);
    t.equal(r.meta.compressedDigest, layers[i]?.digest);
    t.equal(l.entries, 2);
    t.ok(r.lookup(['a.txt', 'b.txt', 'c.txt'][i] as string), 'the layer file is indexed');
  }
  t.equal(events[0]?.type, 'image');
  t.equal(events.filter((e) => e.type === 'layer-done').length, 3);
  const bytes = events.filter((e): e is Extract<IndexProgress, { type: 'layer-bytes' }> => e.type === 'layer-bytes' && e.layer === 0);
  t.equal(bytes.at(-1)?.bytes, layers[0]?.blob.length, 'progress ends at the blob size');
});

t.test('pushes one artifact, then reuses it without pushing or downloading layers', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const first = await indexImage(reg, REF);
  t.ok(first.pushed);
  t.equal(reg.calls.pushArtifact, 1);
  t.equal(reg.calls.fetchBlob, 3);
  const art = (await reg.fetchManifest('registry.test/app', first.artifact.digest)).type === 'manifest'
    ? (JSON.parse(reg.manifests.get(first.artifact.digest)?.bytes.toString() ?? '{}') as ImageManifest) : undefined;
  t.equal(art?.artifactType, CLIP_INDEX_ARTIFACT_TYPE);
  t.equal(art?.subject?.digest, subject.digest);
  t.same(art?.layers.map((l) => [l.mediaType, l.annotations?.[ANNOTATION_LAYER_DIGEST], l.annotations?.[ANNOTATION_LAYER_DIFF_ID]]),
    layers.map((l) => [CLIP_INDEX_MEDIA_TYPE, l.digest, l.diffId]));

  const second = await indexImage(reg, REF);
  t.notOk(second.pushed, 'nothing pushed the second time');
  t.equal(second.artifact.digest, first.artifact.digest);
  t.equal(reg.calls.pushArtifact, 1);
  t.equal(reg.calls.fetchBlob, 3, 'no layer downloaded again');
  t.ok(second.layers.every((l) => l.reused));
  t.same(second.layers.map((l) => l.index), first.layers.map((l) => l.index), 'the same index bytes');
});

t.test('an artifact with some layers: reuses those, builds the rest, pushes a complete one', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const built = await buildImageIndexes(reg, REF);
  await pushIndexArtifact(reg, 'registry.test/app', subject, [built.layers[0]!]);
  const fetchesBefore = reg.calls.fetchBlob;
  const out = await indexImage(reg, REF);
  t.ok(out.pushed);
  t.same(out.layers.map((l) => l.reused), [true, false, false]);
  t.equal(reg.calls.fetchBlob - fetchesBefore, 2, 'only the missing layers are downloaded');
  const listing = await findImageIndexes(reg, REF);
  t.equal(listing.artifacts.length, 2);
  t.same(listing.layers.map((l) => l.diffId), layers.map((l) => l.diffId));
  t.ok(listing.layers.every((l) => l.index !== undefined));
});

t.test('an unusable published index is rebuilt, not reused', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const built = await buildImageIndexes(reg, REF);
  // The index of layer 1 published under layer 0's annotation: decodes fine but describes another layer.
  await pushIndexArtifact(reg, 'registry.test/app', subject, [{ ...built.layers[0]!, index: built.layers[1]!.index }, built.layers[1]!, built.layers[2]!]);
  const out = await indexImage(reg, REF);
  t.same(out.layers.map((l) => l.reused), [false, true, true]);
  t.ok(out.pushed, 'a corrected artifact is pushed');
  t.equal(decodeIndex(out.layers[0]!.index).meta.compressedDigest, layers[0]?.digest);
});

t.test('a layer whose diffID disagrees with the image config fails', async (t) => {
  const reg = new FakeRegistry();
  reg.putImage(layers, 'latest', [layers[0]!.diffId, layers[0]!.diffId, layers[2]!.diffId]);
  await rejectsClipError(t, buildImageIndexes(reg, REF), 'data_corrupt', 'CLIP_ARTIFACT_DIFF_ID_MISMATCH');
  t.equal(reg.calls.pushArtifact, 0);
});

t.test('at most `concurrency` layers download at once', async (t) => {
  const reg = new FakeRegistry();
  const many = Array.from({ length: 7 }, (_, i) => fakeLayer(`f${i}`, `content ${i}`));
  reg.putImage(many);
  // Every download waits until two are in flight: the bound is reached for certain, and a pool
  // without one would start all seven.
  let release!: () => void;
  reg.blobGate = new Promise<void>((resolve) => (release = resolve));
  const built = buildImageIndexes(reg, REF, { concurrency: 2 });
  await until('two layer downloads in flight', () => reg.inFlightBlobs >= 2);
  release();
  await built;
  t.equal(reg.maxInFlightBlobs, 2);
  await rejectsClipError(t, buildImageIndexes(reg, REF, { concurrency: 0 }), 'invalid_argument', 'CLIP_ARTIFACT_BAD_CONCURRENCY');
});

t.test('multi-platform images: per-platform subjects, attestations skipped', async (t) => {
  const reg = new FakeRegistry();
  const amd = reg.putImage([layers[0]!], 'amd');
  const arm = reg.putImage([layers[1]!, layers[2]!], 'arm');
  const att = reg.putImage([layers[2]!], 'att');
  reg.putIndex([{ desc: arm, platform: { os: 'linux', architecture: 'arm64' } }, { desc: amd, platform: { os: 'linux', architecture: 'amd64' } },
    { desc: att, platform: { os: 'unknown', architecture: 'unknown' } }], 'multi');
  const ms = await listPlatformManifests(reg, 'registry.test/app:multi');
  t.same(ms.map((m) => m.descriptor.digest), [arm.digest, amd.digest]);
  t.equal(ms[0]?.reference.digest, arm.digest);
  const a = await indexImage(reg, 'registry.test/app:multi');
  t.equal(a.subject.digest, amd.digest, 'the default platform is linux/amd64');
  const b = await indexImage(reg, 'registry.test/app:multi', { platform: 'linux/arm64' });
  t.equal(b.subject.digest, arm.digest);
  t.equal(b.layers.length, 2);
  const byDigest = await indexImage(reg, ms[0]!.reference);
  t.notOk(byDigest.pushed, 'the digest reference finds the artifact pushed through the tag');
});
