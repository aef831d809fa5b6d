/** Issue 12: quarantined layers and indexes are remembered across restarts, in a bounded file. */
import { join } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import t from 'tap';
import { NoContentCache } from '../../src/contentcache/index.js';
import { LayerStore, QuarantineList, layerStateKey } from '../../src/storage/index.js';
import { FakeBlobSource, makeLayer, readRange, recordingLogger, tempDir } from './fixtures.js';

const hex = (c: string): string => c.repeat(64);
const entry = (kind: 'layer' | 'index', key: string) => ({ kind, key, layer: `sha256:${hex('a')}`, diffId: `sha256:${hex('b')}`, code: 'CLIP_INDEX_MISMATCH', reason: 'entry 2 ("tool"): mode 2541 vs 493' });

t.test('entries survive a reopen; the file is replaced atomically and bounded', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'state', 'quarantine.json');
  const a = await QuarantineList.open(path);
  t.same(a.entries(), [], 'absent file: empty');
  a.add(entry('index', hex('1')));
  a.add(entry('layer', hex('2')));
  a.add(entry('layer', hex('2'))); // once only
  await a.flush();
  const b = await QuarantineList.open(path);
  t.ok(b.has('index', hex('1')) && b.has('layer', hex('2')), 'both kinds reloaded');
  t.notOk(b.has('layer', hex('1')), 'kinds are separate');
  t.equal(b.entries().length, 2);
  t.match(b.get('index', hex('1')), { code: 'CLIP_INDEX_MISMATCH', at: /^\d{4}-\d\d-\d\dT/ });
  t.notOk(existsSync(`${path}.${process.pid}.tmp`), 'no temp file left');

  const small = await QuarantineList.open(path, { maxEntries: 2 });
  small.add(entry('layer', hex('3')));
  await small.flush();
  const c = await QuarantineList.open(path, { maxEntries: 10 });
  t.same(c.entries().map((e) => e.key), [hex('2'), hex('3')], 'past the bound the oldest entry goes');
});

t.test('an unreadable file is moved aside and the list starts empty, with an error log', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'quarantine.json');
  await writeFile(path, '{"version":1,"entries":[');
  const { log, records } = recordingLogger();
  const q = await QuarantineList.open(path, { log });
  t.same(q.entries(), []);
  t.ok(existsSync(`${path}.corrupt`), 'kept aside for the operator');
  t.ok(records.some((r) => r['level'] === 50 && /unreadable/.test(String(r['msg']))));
  await writeFile(path, JSON.stringify({ version: 1, entries: [{ ...entry('layer', hex('4')), at: 'then' }, { ...entry('layer', 'not-hex'), at: 'then' }, { kind: 'other' }] }));
  const r = await QuarantineList.open(path, { log });
  t.same(r.entries().map((e) => e.key), [hex('4')], 'malformed entries are skipped, good ones kept');
  await writeFile(path, JSON.stringify({ version: 2, entries: [] }));
  t.same((await QuarantineList.open(path, { log })).entries(), [], 'another version is not read');
});

t.test('a layer quarantined before a restart is refused by the next store without a download', async (t) => {
  const victim = makeLayer(100_000);
  const planted = makeLayer(100_000);
  const squatRef = { ...planted.ref, diffId: victim.ref.diffId, uncompressedSize: victim.ref.uncompressedSize };
  const blobs = new FakeBlobSource([victim, planted]);
  blobs.verifiesDigest = true;
  const dir = await tempDir(t);
  const path = join(dir, 'quarantine.json');
  const first = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), retryBaseDelayMs: 1, quarantine: await QuarantineList.open(path) });
  const squat = first.open(squatRef);
  await readRange(squat, 0, 4096);
  await first.drain();
  t.ok(first.isQuarantined(squatRef), 'quarantined by its download');
  await squat.close();
  await first.close();
  const saved = JSON.parse(await readFile(path, 'utf8')) as { entries: Array<{ kind: string; key: string; code: string }> };
  t.match(saved.entries, [{ kind: 'layer', key: layerStateKey(squatRef), code: 'CLIP_LAYER_DIFF_ID_MISMATCH' }], 'on disk, by state key');

  const fetchesBefore = blobs.opens;
  const second = await LayerStore.create({ cacheDir: join(dir, 'layers'), blobs, contentCache: new NoContentCache(), retryBaseDelayMs: 1, quarantine: await QuarantineList.open(path) });
  t.teardown(() => second.close());
  t.ok(second.isQuarantined(squatRef), 'the restarted store knows');
  t.throws(() => second.open(squatRef), { code: 'CLIP_LAYER_QUARANTINED', message: /was quarantined at .*CLIP_LAYER_DIFF_ID_MISMATCH/ }, 'new mounts refuse it');
  await t.rejects(second.checkLayer(squatRef), { code: 'CLIP_LAYER_QUARANTINED' }, 'Prepares over it too');
  t.equal(blobs.opens, fetchesBefore, 'without fetching the blob again');
  const v = second.open(victim.ref);
  t.ok((await readRange(v, 0, 4096)).equals(victim.tar.subarray(0, 4096)), 'the true layer of that diffID is unaffected');
  await v.close();
});
