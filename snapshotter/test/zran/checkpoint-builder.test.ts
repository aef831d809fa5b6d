import { createHash } from 'node:crypto';
import t from 'tap';
import { CheckpointBuilder, decodeCheckpointTable, encodeCheckpointTable, loadZran, spanEnd } from '../../src/zran/index.js';
import { COMPRESSORS, buildTable, sampleData } from './fixtures.js';

const data = sampleData(12 * 1024 * 1024);
const SPAN = 1024 * 1024;

t.test('the addon is built and loads', async (t) => {
  t.ok(loadZran(), 'make zran (npx node-gyp rebuild -C snapshotter/native --nodedir=/usr) must have run');
});

t.test('checkpoints land every span and hash exactly the uncompressed bytes', async (t) => {
  for (const [name, compress] of Object.entries(COMPRESSORS)) {
    const blob = compress(data);
    const table = buildTable(blob, SPAN, 7919);
    t.equal(table.uncompressedSize, data.length, `${name}: size`);
    t.equal(table.compressedSize, blob.length, `${name}: compressed size`);
    t.equal(table.points[0]?.out, 0, `${name}: first point at 0`);
    t.ok(table.points.length >= 6, `${name}: ${table.points.length} points`);
    table.points.forEach((p, i) => {
      const end = spanEnd(table, i);
      if (i < table.points.length - 1 && end - p.out < SPAN) t.fail(`${name}: span ${i} shorter than spanBytes`);
      if (!createHash('sha256').update(data.subarray(p.out, end)).digest().equals(p.sha256)) t.fail(`${name}: span ${i} hash`);
      if (i > 0 && p.window?.length !== 32768 && name !== 'multi-member' && name !== 'pigz --independent') t.fail(`${name}: window ${p.window?.length}`);
    });
  }
});

t.test('layers under the threshold get no table; truncated streams are rejected', async (t) => {
  const blob = COMPRESSORS['gzip -1']!(data);
  const small = new CheckpointBuilder({ spanBytes: SPAN, minLayerBytes: blob.length + 1 });
  small.push(blob);
  t.equal(small.finish(), undefined);
  const cut = new CheckpointBuilder({ spanBytes: SPAN, minLayerBytes: 0 });
  cut.push(blob.subarray(0, blob.length - 100));
  t.throws(() => cut.finish(), { code: 'CLIP_ZRAN_BUILD' });
  const garbage = new CheckpointBuilder({ spanBytes: SPAN });
  t.throws(() => garbage.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff])), { code: 'CLIP_ZRAN_BUILD', kind: 'data_corrupt' });
});

t.test('the encoded table rejects corruption', async (t) => {
  const table = buildTable(COMPRESSORS['gzip -9']!(data), SPAN);
  const enc = encodeCheckpointTable(table);
  t.same(decodeCheckpointTable(enc).points.map((p) => p.out), table.points.map((p) => p.out));
  const bad = (mutate: (b: Buffer) => void): void => {
    const b = Buffer.from(enc);
    mutate(b);
    t.throws(() => decodeCheckpointTable(b), { code: 'CLIP_ZRAN_TABLE_CORRUPT', kind: 'data_corrupt' });
  };
  bad((b) => b.writeUInt32LE(2, 0));
  bad((b) => b.writeUInt32LE(table.points.length + 1, 4));
  bad((b) => b.writeUInt8(9, 32 + 16));
  t.throws(() => decodeCheckpointTable(enc.subarray(0, enc.length - 1)), { code: 'CLIP_ZRAN_TABLE_CORRUPT' });
  t.throws(() => decodeCheckpointTable(Buffer.concat([enc, Buffer.from([0])])), { code: 'CLIP_ZRAN_TABLE_CORRUPT' });
});
