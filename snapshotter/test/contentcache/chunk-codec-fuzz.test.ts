/**
 * Seeded, bounded fuzzing of the ContentCache value formats (issue 12): every mutated chunk,
 * blob or manifest decodes to the original or is reported corrupt — never a throw, never other
 * bytes, never an inflate at a size the value declares for itself.
 */
import t from 'tap';
import { prng } from '../fuzz-helpers.js';
import { chunkCrc, decodeBlob, decodeChunk, decodeManifest, encodeBlob, encodeChunk, encodeManifest } from '../../src/contentcache/chunk-codec.js';

const SEED = 0xc0ffee;
const ITERATIONS = 800;

function mutate(buf: Buffer, rnd: () => number): Buffer {
  const out = Buffer.from(buf);
  const at = (): number => Math.floor(rnd() * Math.max(1, out.length));
  switch (Math.floor(rnd() * 4)) {
    case 0:
      for (let k = 0; k < 1 + rnd() * 6; k++) { const i = at(); out[i] = (out[i] ?? 0) ^ (1 << Math.floor(rnd() * 8)); }
      return out;
    case 1: {
      // The size fields: the encoding byte, the blob header, the lz4-napi prefix.
      const i = Math.floor(rnd() * Math.min(out.length, 13));
      out[i] = [0x00, 0x01, 0xff, 0x7f, 0x80][Math.floor(rnd() * 5)] ?? 0;
      return out;
    }
    case 2:
      return out.subarray(0, at());
    default: {
      const i = at();
      return Buffer.concat([out.subarray(0, i), Buffer.from(Array.from({ length: Math.floor(rnd() * 32) }, () => Math.floor(rnd() * 256))), out.subarray(i)]);
    }
  }
}

t.test(`chunk codec: ${ITERATIONS} mutated values are the original or corrupt`, async (t) => {
  const rnd = prng(SEED);
  const text = Buffer.from('layer bytes, fairly compressible '.repeat(2000));
  const chunk = await encodeChunk(text);
  const blob = await encodeBlob(text);
  const manifest = encodeManifest({ v: 1, size: text.length * 3, chunkSizeBytes: text.length, chunks: 3, crc32: [1, 2, 3] });
  let corrupt = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const which = i % 3;
    try {
      if (which === 0) {
        const d = await decodeChunk(mutate(chunk, rnd), text.length, { crc32: chunkCrc(text) });
        if (d.type === 'ok') t.ok(d.data.equals(text), `iteration ${i}: ok means the original bytes`);
        else corrupt++;
      } else if (which === 1) {
        const d = await decodeBlob(mutate(blob, rnd));
        if (d.type === 'ok') t.ok(d.data.equals(text), `iteration ${i}: ok means the original bytes`);
        else corrupt++;
      } else {
        const d = decodeManifest(mutate(Buffer.from(manifest), rnd).toString('utf8'), 'k');
        const m = d.type === 'ok' ? d.manifest : undefined;
        if (m) t.ok(Number.isSafeInteger(m.size) && m.crc32?.length === m.chunks, `iteration ${i}: a manifest that decodes is consistent`);
        else corrupt++;
      }
    } catch (err) {
      t.fail(`iteration ${i}: threw ${String(err)}`);
    }
  }
  t.ok(corrupt > ITERATIONS / 3, `mutations were caught (${corrupt} corrupt)`);
});
