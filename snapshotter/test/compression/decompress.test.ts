import t from 'tap';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { createDecompressor, detectCompression, sniff } from '../../src/compression/index.js';

const oneByteAtATime = (b: Buffer) => Readable.from((function* () {
  for (let i = 0; i < b.length; i++) yield b.subarray(i, i + 1);
})());

t.test('magic bytes pick the codec', async (t) => {
  const tar = Buffer.alloc(2048, 7);
  t.equal(detectCompression(gzipSync(tar)), 'gzip');
  t.equal(detectCompression(execFileSync('zstd', ['-q', '-c'], { input: tar })), 'zstd');
  t.equal(detectCompression(tar), 'none');
  t.equal(detectCompression(Buffer.from([0x1f])), 'none', 'too short to be gzip');
});

t.test('sniff keeps every byte, across tiny chunks and short streams', async (t) => {
  const data = gzipSync(Buffer.from('hello layer'));
  const { head, stream } = await sniff(oneByteAtATime(data));
  t.equal(head.length, 4);
  t.same(await buffer(stream), data);
  const short = await sniff(oneByteAtATime(Buffer.from('ab')));
  t.same(short.head, Buffer.from('ab'));
  t.same(await buffer(short.stream), Buffer.from('ab'));
  const empty = await sniff(Readable.from([]));
  t.equal(empty.head.length, 0);
});

t.test('corrupt zstd is data_corrupt', async (t) => {
  const bad = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(64, 0xff)]);
  await t.rejects(pipeline(Readable.from([bad]), createDecompressor('zstd'), async function* (src) {
    for await (const _ of src) yield _;
  }), { kind: 'data_corrupt', code: 'CLIP_LAYER_DECOMPRESS_FAILED' });
});
