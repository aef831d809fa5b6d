/**
 * The layer read path against a real docker-registry on loopback: ranges of a gzip layer read through
 * LayerStore and the real registry client, single flight visible in the registry's access log, and a
 * stopped registry turning a cold read into a bounded `unavailable` that heals after a restart.
 */
import t from 'tap';
import { join } from 'node:path';
import { createHarness, type Registry } from '../harness/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { LayerStore, RegistryBlobSource } from '../../snapshotter/src/storage/index.js';
import { RecordingContentCache, makeLayer, readRange, type TestLayer } from '../../snapshotter/test/storage/fixtures.js';
import { pushTestBlob } from '../harness/push-blob.js';

const REPO = 'clip/storage-test';

const pushBlob = (reg: Registry, blob: Buffer, digest: string): Promise<void> => pushTestBlob(reg.host, REPO, blob, digest);

const blobGets = (reg: Registry, l: TestLayer) => reg.accessLogLines(`/blobs/${l.ref.digest}`).filter((x) => x.includes('"GET '));

t.test('reads through a real registry, then survives it going away', async (t) => {
  const h = createHarness(t, 'clip-storage-');
  const reg = await h.startRegistry();
  const withRepo = (l: TestLayer): TestLayer => ({ ...l, ref: { ...l.ref, ref: `${reg.hostPort}/${REPO}:v1` } });
  const warm = withRepo(makeLayer(4 << 20));
  const cold = withRepo(makeLayer(1 << 20));
  await pushBlob(reg, warm.blob, warm.ref.digest);
  await pushBlob(reg, cold.blob, cold.ref.digest);

  const client = new RegistryClient({ plainHttp: true, maxRetries: 1, retryBaseDelayMs: 100, connectTimeoutMs: 1_000, timeoutMs: 5_000 });
  t.teardown(() => client.close());
  const cc = new RecordingContentCache('miss');
  const readTimeoutMs = 3_000;
  const store = await LayerStore.create({
    cacheDir: join(h.root, 'cache', 'layers'),
    blobs: new RegistryBlobSource(client),
    contentCache: cc,
    readTimeoutMs,
    maxRetries: 2,
    retryBaseDelayMs: 100,
    checkTimeoutMs: 2_000,
  });
  t.teardown(() => store.close());

  const r = store.open(warm.ref);
  await r.check();
  const offsets = [0, 4096, 1 << 20, 3 << 20, warm.tar.length - 5000, 777_777, 2_000_001, 12];
  const got = await Promise.all(offsets.map((o) => readRange(r, o, 65_536)));
  offsets.forEach((o, i) => t.same(got[i], warm.tar.subarray(o, o + 65_536), `range at ${o}`));
  await store.drain();
  t.equal(blobGets(reg, warm).length, 1, 'one blob GET for eight concurrent reads (registry access log)');
  t.same(cc.calls.filter((c) => c.op === 'storeFile').map((c) => [c.key, c.args[1]]), [[warm.ref.diffId, warm.tar.length]], 'published once');

  await reg.stop();
  const rc = store.open(cold.ref);
  // The refused connection ends the read (its retries exhausted): FETCH_FAILED. Had it waited for
  // the read bound instead, the code would be CLIP_LAYER_READ_TIMEOUT.
  await t.rejects(readRange(rc, 1000, 4096), { kind: 'unavailable', code: 'CLIP_LAYER_FETCH_FAILED', message: /ECONNREFUSED|connect/i });
  await t.rejects(rc.check(), { kind: 'unavailable', code: 'CLIP_LAYER_UNAVAILABLE' });
  t.same(await readRange(r, 100, 100), warm.tar.subarray(100, 200), 'the cached layer is still served');
  await r.check();

  await reg.restart();
  t.same(await readRange(rc, 1000, 4096), cold.tar.subarray(1000, 5096), 'the next read after the restart succeeds');
  await rc.check();
  await store.drain();
  t.equal(blobGets(reg, cold).length, 1, 'one successful GET of the cold layer');
});
