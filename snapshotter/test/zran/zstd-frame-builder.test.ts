import { createHash } from 'node:crypto';
import { decompress } from 'fzstd';
import t from 'tap';
import { decodeZstdFrameTable, encodeZstdFrameTable, scanZstdFrames, zstdSpanEnd } from '../../src/zran/index.js';
import { sampleData } from './fixtures.js';
import { MULTI_FRAME, buildZstd, framed, skippable, zstd } from './zstd-fixtures.js';

const data = sampleData(6 * 1024 * 1024, 11);
const SPAN = 1024 * 1024;
const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

t.test('every multi-frame encoder: output byte-exact, spans on frame boundaries with the right digests', async (t) => {
  for (const [name, compress] of Object.entries(MULTI_FRAME)) {
    const blob = compress(data);
    for (const chunk of [65536, 4099]) {
      const { out, table } = buildZstd(blob, { spanBytes: SPAN, minLayerBytes: 0 }, chunk);
      t.ok(out.equals(data), `${name} (${chunk}-byte chunks): decoded output is the data`);
      if (!table) {
        t.fail(`${name}: no table`);
        continue;
      }
      const frames = scanZstdFrames(blob);
      const sized = frames.filter((f) => f.contentSize !== undefined);
      t.equal(sized.filter((f) => decompress(blob.subarray(f.start, f.end)).length !== f.contentSize).length, 0, `${name}: ${sized.length} frame content sizes read right`);
      const starts = new Set(frames.filter((f) => !f.skippable).map((f) => f.start));
      const ends = new Set(frames.filter((f) => !f.skippable).map((f) => f.end));
      t.equal(table.frameCount, starts.size, `${name}: every zstd frame counted`);
      t.equal(table.compressedSize, blob.length);
      t.equal(table.uncompressedSize, data.length);
      let bad = 0;
      table.spans.forEach((s, i) => {
        const len = zstdSpanEnd(table, i) - s.out;
        if (!starts.has(s.in) || !ends.has(s.inEnd)) bad++;
        if (!sha(data.subarray(s.out, s.out + len)).equals(s.sha256)) bad++;
        if (i < table.spans.length - 1 && len < SPAN) bad++;
      });
      t.equal(bad, 0, `${name}: ${table.spans.length} spans start and end on frames, ≥ span size, digests match`);
    }
  }
});

t.test('one byte at a time through a small mixed stream', async (t) => {
  const small = data.subarray(0, 200_000);
  const blob = Buffer.concat([skippable(Buffer.from('x')), zstd(small.subarray(0, 70_000)), zstd(Buffer.alloc(0)), zstd(small.subarray(70_000), ['-19', `--stream-size=${small.length - 70_000}`])]);
  const { out, table } = buildZstd(blob, { spanBytes: 1, minLayerBytes: 0 }, 1);
  t.ok(out.equals(small));
  t.equal(table?.spans.length, 2, 'the empty frame joins a span; each data frame starts one');
  t.equal(table?.spans[0]?.in, 9, 'the first span starts at the first zstd frame, after the skippable one');
  t.equal(table?.frameCount, 3);
});

t.test('layers that get no table', async (t) => {
  const cases: Array<[string, Buffer, number]> = [
    ['single frame (zstd -c)', zstd(data), 0],
    ['single frame with checksum and content size', zstd(data, ['-9', `--stream-size=${data.length}`]), 0],
    ['every frame in one span', framed(data, 2 * 1024 * 1024), 0],
    ['under the minimum size', MULTI_FRAME['pzstd -1']!(data), 1 << 30],
  ];
  for (const [name, blob, minLayerBytes] of cases) {
    const spanBytes = name === 'every frame in one span' ? 64 * 1024 * 1024 : SPAN;
    const { out, table, builder } = buildZstd(blob, { spanBytes, minLayerBytes });
    t.ok(out.equals(data), `${name}: decoded`);
    t.equal(table, undefined, `${name}: no table (${builder.skippedBecause})`);
  }
  const long = buildZstd(framed(data.subarray(0, 2 * SPAN), SPAN, () => ['-3', '--long=28']), { spanBytes: SPAN / 2, minLayerBytes: 0 });
  t.ok(long.out.equals(data.subarray(0, 2 * SPAN)));
  t.equal(long.table, undefined, `a 256 MiB window: no table (${long.builder.skippedBecause})`);
});

t.test('a damaged stream fails like the plain decoder does: data_corrupt, CLIP_LAYER_DECOMPRESS_FAILED', async (t) => {
  const blob = MULTI_FRAME['pzstd -1']!(data);
  const frames = scanZstdFrames(blob).filter((f) => !f.skippable);
  const truncated = blob.subarray(0, blob.length - 10);
  const badMagic = Buffer.from(blob);
  badMagic.writeUInt32LE(0x12345678, frames[1]!.start);
  const reservedBlock = Buffer.from(blob);
  reservedBlock[frames[1]!.start + 6]! |= 0x06; // the first block header's type bits → 3
  for (const [name, b] of [['truncated', truncated], ['garbage between frames', badMagic], ['reserved block type', reservedBlock]] as const) {
    t.throws(() => buildZstd(b, { minLayerBytes: 0 }), { name: 'ClipError', kind: 'data_corrupt', code: 'CLIP_LAYER_DECOMPRESS_FAILED' }, name);
  }
});

t.test('the table codec: round trip, and every malformed table is CLIP_ZRAN_TABLE_CORRUPT', async (t) => {
  const { table } = buildZstd(MULTI_FRAME['pzstd -1']!(data), { spanBytes: SPAN, minLayerBytes: 0 });
  const enc = encodeZstdFrameTable(table!);
  t.same(decodeZstdFrameTable(enc), table);
  t.equal(enc.length, 32 + 64 * table!.spans.length);
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(enc);
    f(b);
    return b;
  };
  const bad: Record<string, Buffer> = {
    truncated: enc.subarray(0, enc.length - 1),
    version: mutate((b) => b.writeUInt32LE(2, 0)),
    'no spans': mutate((b) => b.writeUInt32LE(0, 4)),
    'frame count': mutate((b) => b.writeUInt32LE(b.readUInt32LE(12) + 1, 12)),
    'first span not at 0': mutate((b) => b.writeUInt32LE(5, 32 + 16)),
    'spans out of order': mutate((b) => b.writeUInt32LE(0, 32 + 64 + 16)),
    'compressed range beyond the blob': mutate((b) => b.writeUInt32LE(0xffffffff, 32 + 8)),
    'empty compressed range': mutate((b) => b.writeUInt32LE(b.readUInt32LE(32), 32 + 8)),
    'huge offset': mutate((b) => b.writeUInt32LE(0xffffffff, 32 + 64 + 16 + 4)),
  };
  for (const [name, b] of Object.entries(bad)) t.throws(() => decodeZstdFrameTable(b), { code: 'CLIP_ZRAN_TABLE_CORRUPT' }, name);
});
