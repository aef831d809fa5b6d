import { Readable } from 'node:stream';
import t from 'tap';
import { buildIndex, decodeIndex, decodeIndexOffThread, encodeIndex } from '../../src/clip/index.js';
import { member, rejectsClipError, tar } from './tar-fixtures.js';

/** An encoded index of a layer with `files` small files under one directory. */
async function encodedIndex(files: number): Promise<Buffer> {
  const parts = [member({ name: 'd/', type: '5', mode: 0o755 })];
  for (let i = 0; i < files; i++) parts.push(member({ name: `d/f${i}`, mode: 0o644 }, `${i}`));
  return encodeIndex(await buildIndex(Readable.from([tar(...parts)])));
}

/** Resolves with how many event-loop turns ran while `p` was pending. */
async function turnsWhile(p: Promise<unknown>): Promise<number> {
  let turns = 0;
  let done = false;
  const spin = (): void => {
    if (done) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  await p.finally(() => (done = true));
  return turns;
}

t.test('an index checked on the worker reads exactly as one decoded inline', async (t) => {
  const bytes = await encodedIndex(50);
  const inline = decodeIndex(bytes);
  const worker = await decodeIndexOffThread(bytes, {}, 0);
  t.same(worker.meta, inline.meta);
  t.equal(worker.entryCount, inline.entryCount);
  for (const path of ['/d', '/d/f0', '/d/f49', '/nope']) t.same(worker.lookup(path), inline.lookup(path), path);
  t.same(bytes, await encodedIndex(50), 'the caller keeps its bytes');
});

t.test('the worker refuses what decodeIndex refuses, with the same kind and code', async (t) => {
  const bytes = await encodedIndex(20);
  const flipped = Buffer.from(bytes);
  flipped[flipped.length - 3]! ^= 0xff;
  await rejectsClipError(t, decodeIndexOffThread(flipped, {}, 0), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
  await rejectsClipError(t, decodeIndexOffThread(bytes, { maxEntries: 5 }, 0), 'invalid_argument', 'CLIP_INDEX_TOO_LARGE');
  // And it keeps answering after a refusal.
  t.equal((await decodeIndexOffThread(bytes, {}, 0)).entryCount, decodeIndex(bytes).entryCount);
});

t.test('a large index is checked while the event loop keeps turning; a small one inline', async (t) => {
  const big = await encodedIndex(60_000);
  t.ok(big.length > 256 << 10, `the large index (${big.length} bytes) is over the inline limit`);
  const turns = await turnsWhile(decodeIndexOffThread(big));
  t.ok(turns > 0, `the loop turned ${turns} times while the index was checked`);
  const small = await encodedIndex(10);
  t.equal(await turnsWhile(decodeIndexOffThread(small)), 0, 'a small index decodes inline, before the loop turns');
});
