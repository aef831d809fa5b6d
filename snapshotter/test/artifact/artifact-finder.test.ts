import t from 'tap';
import {
  ANNOTATION_INDEX_VERSION, ANNOTATION_LAYER_DIGEST, CLIP_INDEX_ARTIFACT_TYPE, CLIP_INDEX_MEDIA_TYPE, ClipArtifactFinder, buildImageIndexes, createLayerIndexLookup,
  findLayerIndex, pushIndexArtifact,
} from '../../src/artifact/index.js';
import { decodeIndex } from '../../src/clip/index.js';
import { FakeRegistry, fakeLayer, sha256 } from './fake-registry.js';

const REPO = 'registry.test/app';
const layers = [fakeLayer('a.txt', 'alpha'), fakeLayer('b.txt', 'bravo')];

async function published(): Promise<{ reg: FakeRegistry; subject: string }> {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const built = await buildImageIndexes(reg, `${REPO}:latest`);
  await pushIndexArtifact(reg, REPO, subject, built.layers);
  reg.calls = { findReferrers: 0, fetchManifest: 0, fetchBlob: 0, fetchBlobBytes: 0, pushArtifact: 0 };
  return { reg, subject: subject.digest };
}

t.test('one referrers lookup per subject, shared by concurrent and later callers', async (t) => {
  const { reg, subject } = await published();
  const finder = new ClipArtifactFinder(reg);
  const found = await Promise.all([0, 1, 0, 1].map((i) => finder.findLayerIndex(REPO, subject, layers[i]!.digest)));
  t.same(found.map((b) => b && decodeIndex(b).meta.diffId), [0, 1, 0, 1].map((i) => layers[i]!.diffId));
  t.equal(reg.calls.findReferrers, 1);
  t.equal(reg.calls.fetchManifest, 1, 'the artifact manifest is fetched once');
  t.equal(await finder.findLayerIndex(REPO, subject, sha256(Buffer.from('other layer'))), undefined, 'unknown layer');
  t.equal(reg.calls.findReferrers, 1, 'a fresh cached answer is trusted for missing layers');
});

t.test('the module-level findLayerIndex caches per client', async (t) => {
  const { reg, subject } = await published();
  t.ok(await findLayerIndex(reg, REPO, subject, layers[0]!.digest));
  t.ok(await findLayerIndex(reg, REPO, subject, layers[1]!.digest));
  t.equal(reg.calls.findReferrers, 1);
  t.equal(await findLayerIndex(reg, REPO, sha256(Buffer.from('no such manifest')), layers[0]!.digest), undefined);
});

t.test('a missing layer triggers one refresh once the cached answer is old', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  let now = 1000;
  const finder = new ClipArtifactFinder(reg, { refreshAfterMs: 500, nowMs: () => now });
  t.equal(await finder.findLayerIndex(REPO, subject.digest, layers[0]!.digest), undefined);
  const built = await buildImageIndexes(reg, `${REPO}:latest`, { finder: new ClipArtifactFinder(reg) });
  await pushIndexArtifact(reg, REPO, subject, built.layers);
  t.equal(await finder.findLayerIndex(REPO, subject.digest, layers[0]!.digest), undefined, 'still within refreshAfterMs');
  now += 600;
  t.ok(await finder.findLayerIndex(REPO, subject.digest, layers[0]!.digest), 'found after the refresh');
});

t.test('referrers that are not readable clip indexes are ignored', async (t) => {
  const reg = new FakeRegistry();
  const subject = reg.putImage(layers);
  const other = reg.putImage([layers[1]!], 'other');
  const built = await buildImageIndexes(reg, `${REPO}:latest`);
  const blob = reg.putBlob(built.layers[0]!.index);
  const annotated = (v: string) => ({ ...blob, mediaType: CLIP_INDEX_MEDIA_TYPE, annotations: { [ANNOTATION_LAYER_DIGEST]: layers[0]!.digest, [ANNOTATION_INDEX_VERSION]: v } });
  // Lists the right blob but claims a subject other than the one it is registered under.
  const wrongSubject = reg.putManifest({ schemaVersion: 2, artifactType: CLIP_INDEX_ARTIFACT_TYPE, config: blob, layers: [annotated('1')], subject: other }, 'application/vnd.oci.image.manifest.v1+json');
  const future = reg.putManifest({ schemaVersion: 2, artifactType: CLIP_INDEX_ARTIFACT_TYPE, config: blob, layers: [annotated('99')], subject }, 'application/vnd.oci.image.manifest.v1+json');
  const deleted = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(Buffer.from('gone')), size: 4, artifactType: CLIP_INDEX_ARTIFACT_TYPE };
  reg.referrers.set(subject.digest, [{ ...wrongSubject, artifactType: CLIP_INDEX_ARTIFACT_TYPE }, { ...future, artifactType: CLIP_INDEX_ARTIFACT_TYPE }, deleted]);
  const finder = new ClipArtifactFinder(reg);
  t.equal(await finder.findLayerIndex(REPO, subject.digest, layers[0]!.digest), undefined);
  t.equal((await finder.artifacts(REPO, subject.digest)).length, 1, 'the readable-but-newer artifact is listed, its blob skipped');
});

t.test('a failed lookup is not cached', async (t) => {
  const { reg, subject } = await published();
  const real = reg.findReferrers;
  reg.findReferrers = async () => {
    throw new Error('registry down');
  };
  const finder = new ClipArtifactFinder(reg);
  await t.rejects(finder.findLayerIndex(REPO, subject, layers[0]!.digest), /registry down/);
  reg.findReferrers = real;
  t.ok(await finder.findLayerIndex(REPO, subject, layers[0]!.digest));
});

t.test('a caller signal aborts the wait, not the shared lookup', async (t) => {
  const { reg, subject } = await published();
  const finder = new ClipArtifactFinder(reg);
  const ac = new AbortController();
  const p = finder.findLayerIndex(REPO, subject, layers[0]!.digest, ac.signal);
  ac.abort(new Error('caller gone'));
  await t.rejects(p, /caller gone/);
  t.ok(await finder.findLayerIndex(REPO, subject, layers[0]!.digest));
  t.equal(reg.calls.findReferrers, 1);
});

t.test('createLayerIndexLookup resolves references without a manifest digest, once per TTL', async (t) => {
  const { reg, subject } = await published();
  let now = 0;
  let resolves = 0;
  const real = reg.resolveImage;
  reg.resolveImage = async (...args) => {
    resolves++;
    return real(...args);
  };
  const lookup = createLayerIndexLookup(reg, { resolveTtlMs: 100, nowMs: () => now });
  const byTag = await lookup({ imageRef: `${REPO}:latest`, layerDigest: layers[0]!.digest });
  t.equal(byTag && decodeIndex(byTag).meta.diffId, layers[0]!.diffId);
  t.ok(await lookup({ imageRef: `${REPO}:latest`, layerDigest: layers[1]!.digest }));
  t.equal(resolves, 1);
  now += 200;
  t.ok(await lookup({ imageRef: `${REPO}:latest`, layerDigest: layers[1]!.digest }));
  t.equal(resolves, 2, 'resolved again after the TTL');
  t.ok(await lookup({ imageRef: `${REPO}:latest`, layerDigest: layers[1]!.digest, manifestDigest: subject }));
  t.equal(resolves, 2, 'a given manifest digest needs no resolution');
  t.equal(await lookup({ imageRef: `${REPO}:latest`, layerDigest: sha256(Buffer.from('x')) }), undefined);
});
