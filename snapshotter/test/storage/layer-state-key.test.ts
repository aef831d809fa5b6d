/**
 * Issue 12, deliver 5: layer state is keyed by what was verified. Two images whose indexes claim
 * the same diffID for different blobs never share spans, a download or a sparse file; a layer whose
 * blob does not produce its diffID is quarantined.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import t from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, layerStateKey } from '../../src/storage/index.js';
import { FakeBlobSource, makeLayer, readRange, recordingLogger, tempDir } from './fixtures.js';
import { RangeBlobSource, gzipLayer } from './range-fixtures.js';
import { CheckpointBuilder, encodeCheckpointTable } from '../../src/zran/index.js';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { sampleData } from '../zran/fixtures.js';

t.test('the state key binds the diffID, the blob and the span tables', async (t) => {
  const base = { ref: 'r/x:1', digest: `sha256:${'a'.repeat(64)}`, diffId: `sha256:${'b'.repeat(64)}`, uncompressedSize: 10 };
  const k = layerStateKey(base);
  t.match(k, /^[0-9a-f]{64}$/);
  t.equal(layerStateKey({ ...base, ref: 'other/y:2' }), k, 'the image reference does not matter');
  t.not(layerStateKey({ ...base, digest: `sha256:${'c'.repeat(64)}` }), k, 'another blob');
  t.not(layerStateKey({ ...base, diffId: `sha256:${'d'.repeat(64)}` }), k, 'another diffID');
  t.not(layerStateKey({ ...base, gzipCheckpoints: Buffer.from('x') }), k, 'another span table');
  t.not(layerStateKey({ ...base, gzipCheckpoints: Buffer.from('x') }), layerStateKey({ ...base, zstdFrames: Buffer.from('x') }), 'gzip vs zstd table');
});

t.test('a squatter claiming the victim\'s diffID: the victim\'s reads get the victim\'s bytes', async (t) => {
  const victim = makeLayer(200_000);
  const planted = makeLayer(200_000);
  // The squatter's index says its blob is the victim's layer.
  const squatRef = { ...planted.ref, diffId: victim.ref.diffId, uncompressedSize: victim.ref.uncompressedSize };
  const blobs = new FakeBlobSource([victim, planted]);
  blobs.verifiesDigest = true; // each blob is served as pushed, like the registry client checks
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), log, retryBaseDelayMs: 1 });
  t.teardown(() => s.close());
  const squat = s.open(squatRef);
  const v = s.open(victim.ref);
  const got = await readRange(squat, 0, 4096);
  t.ok(got.equals(planted.tar.subarray(0, 4096)), 'the squatter reads its own blob (served before the hash)');
  t.ok((await readRange(v, 0, 4096)).equals(victim.tar.subarray(0, 4096)), 'the victim reads its own bytes, not the squatter\'s download');
  await s.drain();
  t.ok(s.isQuarantined(squatRef), 'the squatter\'s download failed its diffID: quarantined');
  t.notOk(s.isQuarantined(victim.ref), 'the victim is not');
  await t.rejects(readRange(squat, 0, 10), { kind: 'data_corrupt', code: 'CLIP_LAYER_QUARANTINED' }, 'its reads fail (EIO)');
  t.throws(() => s.open(squatRef), { code: 'CLIP_LAYER_QUARANTINED' }, 'new mounts refuse it');
  await t.rejects(s.checkLayer(squatRef), { code: 'CLIP_LAYER_QUARANTINED' });
  t.ok((await readRange(v, 100_000, 4096)).equals(victim.tar.subarray(100_000, 104_096)), 'the victim keeps working');
  t.ok(records.some((r) => r['code'] === 'CLIP_LAYER_QUARANTINED' && r['level'] === 50), 'logged at error');
  await squat.close();
  await v.close();
});

/** A second gzip layer with the same diffID claim but a different blob and table. */
function otherGzip() {
  const tar = sampleData(12 * 1024 * 1024, 7);
  const blob = execFileSync('pigz', ['-c', '-6'], { input: tar, maxBuffer: 1 << 30 });
  const b = new CheckpointBuilder({ spanBytes: 1024 * 1024, minLayerBytes: 0 });
  b.push(blob);
  return { tar, blob, checkpoints: encodeCheckpointTable(b.finish()!), digest: `sha256:${createHash('sha256').update(blob).digest('hex')}` };
}

t.test('range reads: spans verified against the squatter\'s index are not the victim\'s; completion quarantines the squatter', async (t) => {
  const victim = gzipLayer();
  const planted = otherGzip();
  const blobs = new RangeBlobSource(victim);
  blobs.others.set(planted.digest, planted.blob);
  const dir = await tempDir(t);
  const { log, records } = recordingLogger();
  const s = await LayerStore.create({
    cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), rangeReads: true, log,
    rangeCompletionBytesPerSec: 1 << 30, rangeCompletionIdleMs: 0,
  });
  t.teardown(() => s.close());
  const squatRef = { ...victim.ref, digest: planted.digest, gzipCheckpoints: planted.checkpoints, uncompressedSize: planted.tar.length };
  const victimRef = { ...victim.ref, gzipCheckpoints: victim.checkpoints };
  const squat = s.open(squatRef);
  const off = 5 * 1024 * 1024;
  t.ok((await readRange(squat, off, 4096)).equals(planted.tar.subarray(off, off + 4096)), 'the squatter\'s spans decode its own blob');
  const v = s.open(victimRef);
  t.ok((await readRange(v, off, 4096)).equals(victim.tar.subarray(off, off + 4096)), 'the victim reads its own bytes at the same offset');
  await s.drain();
  t.ok(s.isQuarantined(squatRef), 'the squatter\'s completion hashed to another diffID: quarantined');
  t.notOk(existsSync(join(dir, 'sparse-layers', layerStateKey(squatRef))), 'its sparse file is gone');
  await t.rejects(readRange(squat, off, 10), { code: 'CLIP_LAYER_QUARANTINED' });
  t.ok(existsSync(join(dir, 'layers', victim.hex)), 'the victim completed into the disk cache');
  t.ok((await readRange(v, 0, 4096)).equals(victim.tar.subarray(0, 4096)));
  t.ok(records.some((r) => r['msg'] === 'layer quarantined: its blob does not produce its diffID; reads fail and new mounts refuse it'));
  await squat.close();
  await v.close();
});
