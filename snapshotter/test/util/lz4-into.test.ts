// ContentCache chunks' LZ4 into buffers this side owns (util/lz4-into.ts, the clip_lz4 addon): the
// same framing as lz4-napi both ways, typed errors on bad blocks, and resident memory that returns
// after a multi-GB run where lz4-napi's async API kept hundreds of MB (issue 15).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { compressSync, uncompressSync } from 'lz4-napi';
import { ClipError } from '../../src/errors/index.js';
import { compressFramed, lz4IntoVersion, uncompressFramed, uncompressFramedSync } from '../../src/util/lz4-into.js';

const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(20_000));

t.test('round trip, with room left for the caller\'s header', async (t) => {
  t.match(lz4IntoVersion(), /^\d+\.\d+\.\d+$/);
  const framed = (await compressFramed(text, 3))!;
  t.ok(framed.length < text.length / 10, `compressed to ${framed.length} of ${text.length} bytes`);
  t.equal(framed.readUInt32LE(3), text.length, 'the length prefix follows the header');
  t.ok((await uncompressFramed(framed.subarray(3), text.length)).equals(text));
  t.ok(uncompressFramedSync(framed.subarray(3), text.length).equals(text));
});

t.test('the framing is lz4-napi\'s, both ways (values already in a ContentCache stay readable)', async (t) => {
  const ours = (await compressFramed(text, 0))!;
  t.ok(uncompressSync(ours).equals(text), 'lz4-napi inflates ours');
  const theirs = compressSync(text);
  t.ok((await uncompressFramed(theirs, text.length)).equals(text), 'we inflate lz4-napi\'s');
});

t.test('a block not smaller than its input is not kept', async (t) => {
  t.equal(await compressFramed(randomBytes(1 << 20), 1), undefined, 'incompressible');
  t.equal(await compressFramed(Buffer.from('abc'), 1), undefined, 'too small for a prefix');
});

t.test('bad blocks are typed errors, sync and async', async (t) => {
  const framed = (await compressFramed(text, 0))!;
  const flipped = Buffer.from(framed);
  for (let i = 8; i < flipped.length; i += 97) flipped[i] = flipped[i]! ^ 0xa5;
  const cases: Array<[string, Buffer, number]> = [
    ['wrong declared length', framed, text.length - 1],
    ['truncated', framed.subarray(0, framed.length - 40), text.length],
    ['corrupted', flipped, text.length],
    ['no prefix', framed.subarray(0, 2), text.length],
  ];
  for (const [what, block, length] of cases) {
    await t.rejects(uncompressFramed(block, length), { code: 'CLIP_LZ4_CORRUPT' }, `${what} (async)`);
    let thrown: unknown;
    try {
      uncompressFramedSync(block, length);
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown instanceof ClipError && thrown.code === 'CLIP_LZ4_CORRUPT', `${what} (sync): ${String(thrown)}`);
  }
});

t.test('resident memory comes back after 800 MB of chunks; lz4-napi\'s async API keeps it', async (t) => {
  const child = fileURLToPath(new URL('./lz4-into-memory-child.js', import.meta.url));
  const grew = (mode: string): number =>
    (JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--max-semi-space-size=2', child, mode], { encoding: 'utf8', env: { ...process.env, UV_THREADPOOL_SIZE: '16', NODE_OPTIONS: '' } })) as { grewMiB: number }).grewMiB;
  const into = grew('into');
  const napi = grew('napi');
  t.ok(into < 32, `lz4-into: ${into.toFixed(1)} MiB more resident afterwards`);
  t.ok(napi > into + 64, `lz4-napi async (the check can see a retained arena): ${napi.toFixed(1)} MiB`);
});
