/**
 * Seeded, bounded fuzzing of zran's tables (issue 12): gzip checkpoint tables with inline windows
 * (v1) and with a window pack (v2), the windows fetched from a pack, and zstd frame tables. They
 * arrive inside index artifacts and ContentCache objects, so every input must decode, or fail
 * with a ClipError, without allocating more than a window's worth.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { decodeCheckpointTable, decodeZstdFrameTable, encodeCheckpointTable, encodeZstdFrameTable, packWindows, unpackWindow } from '../../src/zran/index.js';
import { isTypedRefusal, largestAllocation, mutateBytes, prng } from '../fuzz-helpers.js';
import { buildTable, sampleData } from './fixtures.js';

const SEED = 0x2a11;
const ITERATIONS = 600;
/** A decoded window is 32 KiB; nothing a table declares may make a decoder allocate more than this. */
const MAX_ALLOC = 256 * 1024;

function outcomeOf(fn: () => unknown): { ok: boolean; refused: boolean; largest: number; err?: unknown } {
  const { value, largest } = largestAllocation(() => {
    try {
      fn();
      return undefined;
    } catch (err) {
      return { err };
    }
  });
  if (value === undefined) return { ok: true, refused: false, largest };
  return { ok: false, refused: isTypedRefusal(value.err), largest, err: value.err };
}

t.test(`gzip checkpoint tables (inline and packed) and pack windows: ${ITERATIONS} mutations each`, async (t) => {
  const blob = gzipSync(sampleData(600 * 1024), { level: 6 });
  const table = buildTable(blob, 64 * 1024);
  t.ok(table.points.length > 3, `the seed table has ${table.points.length} points`);
  const inline = encodeCheckpointTable(table);
  const packed = packWindows(inline);
  const windows = decodeCheckpointTable(packed.table).points.flatMap((p) => (p.packed && p.packed.length > 0 ? [p.packed] : []));
  const rnd = prng(SEED);
  const seen = { ok: 0, refused: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const kind = i % 3;
    const o = kind === 0
      ? outcomeOf(() => decodeCheckpointTable(mutateBytes(inline, rnd)))
      : kind === 1
        ? outcomeOf(() => decodeCheckpointTable(mutateBytes(packed.table, rnd)))
        : (() => {
          const w = windows[i % windows.length]!;
          const lz = mutateBytes(packed.pack.subarray(w.offset, w.offset + w.length), rnd);
          return outcomeOf(() => unpackWindow(lz, { ...w, length: lz.length }));
        })();
    if (o.ok) seen.ok++;
    else if (o.refused) seen.refused++;
    else t.fail(`iteration ${i}: not a typed error: ${String(o.err)}`);
    if (o.largest > MAX_ALLOC) t.fail(`iteration ${i}: allocated ${o.largest} bytes`);
  }
  t.ok(seen.ok > 0 && seen.refused > 0, `both outcomes reached (${seen.ok} decoded, ${seen.refused} refused)`);
});

t.test(`zstd frame tables: ${ITERATIONS} mutations`, async (t) => {
  const spans = Array.from({ length: 6 }, (_, i) => ({
    in: i * 1000, inEnd: i * 1000 + 900, out: i * 4096, frames: 2,
    sha256: createHash('sha256').update(String(i)).digest(),
  }));
  const encoded = encodeZstdFrameTable({ spanBytes: 4096, frameCount: 12, compressedSize: 6000, uncompressedSize: 6 * 4096, spans });
  t.equal(decodeZstdFrameTable(encoded).spans.length, 6, 'the seed table decodes');
  const rnd = prng(SEED ^ 0x77);
  const seen = { ok: 0, refused: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const o = outcomeOf(() => decodeZstdFrameTable(mutateBytes(encoded, rnd)));
    if (o.ok) seen.ok++;
    else if (o.refused) seen.refused++;
    else t.fail(`iteration ${i}: not a typed error: ${String(o.err)}`);
    if (o.largest > MAX_ALLOC) t.fail(`iteration ${i}: allocated ${o.largest} bytes`);
  }
  t.ok(seen.ok > 0 && seen.refused > 0, `both outcomes reached (${seen.ok} decoded, ${seen.refused} refused)`);
});
