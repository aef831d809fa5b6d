import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { buildIndex, decodeIndex, encodeIndex } from '../../src/clip/index.js';
import { SparseLayer } from '../../src/storage/index.js';
import { decodeCheckpointTable, gzipCheckpointObserver } from '../../src/zran/index.js';
import { expectFilesExact, makeGnuTar } from './fixtures.js';

const stream = (buf: Buffer, chunk = 65536): Readable =>
  Readable.from((function* () { for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk); })());

const makeTar = (t: Test) => makeGnuTar(t, 'deep.txt', 3);

t.test('buildIndex stores checkpoints as a section; file bytes read through them are exact', async (t) => {
  const { tar, files, dir } = await makeTar(t);
  const gz = execFileSync('gzip', ['-6', '-c', '-n'], { input: tar, maxBuffer: 1 << 30 });
  const observer = gzipCheckpointObserver({ spanBytes: 1024 * 1024, minLayerBytes: 0 });
  t.ok(observer, 'addon loaded');
  const idx = await buildIndex(stream(gz), { compressedObserver: observer });
  const plain = await buildIndex(stream(gz));
  t.equal(plain.gzipCheckpoints, undefined);
  const reader = decodeIndex(encodeIndex(idx));
  const without = decodeIndex(encodeIndex(plain));
  t.equal(without.gzipCheckpoints, undefined, 'an index without the section reads as before');
  t.equal(reader.entryCount, without.entryCount);
  t.equal(reader.meta.diffId, without.meta.diffId);
  const table = decodeCheckpointTable(reader.gzipCheckpoints!);
  t.equal(table.uncompressedSize, tar.length);
  t.equal(table.compressedSize, gz.length);
  t.ok(table.points.length >= 10);
  const layer = await SparseLayer.openGzip({
    table, path: join(dir, 'sparse'), fetchRange: async (s, e) => gz.subarray(s, e),
  });
  t.teardown(() => layer.close());
  await expectFilesExact(t, reader, layer, files);
  const sparse = await readFile(join(dir, 'sparse'));
  t.ok(sparse.length <= tar.length);
});

t.test('zstd and plain layers get no section', async (t) => {
  const { tar } = await makeTar(t);
  for (const blob of [tar, execFileSync('zstd', ['-q', '-c'], { input: tar, maxBuffer: 1 << 30 })]) {
    const idx = await buildIndex(stream(blob), { compressedObserver: gzipCheckpointObserver({ minLayerBytes: 0 }) });
    t.equal(idx.gzipCheckpoints, undefined);
  }
});
