import t from 'tap';
import { randomBytes } from 'node:crypto';
import { checkPieces, decodeChunk, decodeChunkSync, encodeChunk, pieceDigests } from '../../src/contentcache/chunk-codec.js';
import { checkPiecesAhead, decodeChunkOffThread, pieceDigestsOffThread } from '../../src/contentcache/chunk-check-off-thread.js';
import { chunkDigest } from '../../src/contentcache/object-mac.js';

/** `b` in memory of its own, as a large Redis reply arrives (so it can be moved to the worker). */
const own = (b: Buffer): Buffer => {
  const o = Buffer.allocUnsafeSlow(b.length);
  b.copy(o);
  return o;
};

t.test('a signed chunk is checked on the worker: the value moves there, the same answer comes back', async (t) => {
  const text = Buffer.from('a file of a layer\n'.repeat(60_000));
  const noise = randomBytes(1 << 20);
  for (const [name, data] of [['lz4', text], ['raw', noise]] as const) {
    const value = own(await encodeChunk(data));
    t.equal(value[0], name === 'lz4' ? 1 : 0, `${name} encoding`);
    const inline = await decodeChunk(Buffer.from(value), data.length, { sha256: chunkDigest(data) });
    const off = await decodeChunkOffThread(value, data.length, { sha256: chunkDigest(data) }, 0);
    t.equal(value.byteLength, 0, `${name}: the value moved to the worker (not copied)`);
    t.equal(off.type, 'ok');
    t.same(off, inline, `${name}: the same bytes as inline`);
  }
});

t.test('what fails inline fails on the worker, with the same reason', async (t) => {
  const data = Buffer.from('abc'.repeat(100_000));
  const sha256 = chunkDigest(data);
  const packed = await encodeChunk(data);
  const flipped = Buffer.from(packed);
  flipped.writeUInt8(flipped.readUInt8(flipped.length - 3) ^ 0xff, flipped.length - 3);
  const forged = Buffer.from(data);
  forged[7] = 0x78;
  const cases: Array<[string, Buffer, number, string]> = [
    ['bit flip', flipped, data.length, sha256],
    ['truncated', packed.subarray(0, packed.length - 5), data.length, sha256],
    ['wrong length', packed, data.length - 1, sha256],
    ['other bytes, valid encoding', await encodeChunk(forged), data.length, sha256],
    ['unknown encoding', Buffer.from([7, 1, 2]), 2, sha256],
  ];
  for (const [name, value, length, digest] of cases) {
    const inline = await decodeChunk(Buffer.from(value), length, { sha256: digest });
    t.equal(inline.type, 'corrupt', `${name}: corrupt inline`);
    t.same(await decodeChunkOffThread(own(value), length, { sha256: digest }, 0), inline, `${name}: the same on the worker`);
    t.same(decodeChunkSync(Buffer.from(value), length, { sha256: digest }), inline, `${name}: the same synchronously`);
  }
});

t.test('CRC-only chunks and small chunks stay on this thread', async (t) => {
  const data = Buffer.from('x'.repeat(4096));
  const value = own(await encodeChunk(data));
  t.equal((await decodeChunkOffThread(value, data.length, { sha256: chunkDigest(data) })).type, 'ok');
  t.equal(value.byteLength, value.length, 'below the threshold: not moved');
  t.ok(value.byteLength > 0);
  const big = Buffer.from('y'.repeat(1 << 20));
  const v1 = own(await encodeChunk(big));
  const { crc32 } = await import('node:zlib');
  t.equal((await decodeChunkOffThread(v1, big.length, { crc32: crc32(big) }, 0)).type, 'ok');
  t.ok(v1.byteLength > 0, 'a CRC check is not moved');
});

t.test('piece digests computed on the worker; the bytes come back in the same memory', async (t) => {
  const data = randomBytes((1 << 20) + 1000);
  const expected = pieceDigests(data, 256 << 10);
  t.equal(expected.length, 5, 'four whole pieces and a short last one');
  t.equal(expected[0], chunkDigest(data.subarray(0, 256 << 10)));
  const sent = own(data);
  const back = await pieceDigestsOffThread(sent, 256 << 10, 0);
  t.same(back.digests, expected);
  t.equal(sent.byteLength, 0, 'moved, not copied');
  t.ok(back.data.equals(data), 'bytes intact');
  const part = own(data).subarray(0, 1000);
  const small = await pieceDigestsOffThread(part, 256 << 10, 0);
  t.same(small.digests, [chunkDigest(data.subarray(0, 1000))], 'a view of part of a buffer is copied over, same digest');
});

t.test('checkPiecesAhead marks the pieces that match their signed digests, and only those', async (t) => {
  const pieceBytes = 64 * 1024;
  const data = Buffer.alloc(5 * pieceBytes + 1000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + 7) & 0xff;
  const sha256 = pieceDigests(data, pieceBytes);
  t.equal(sha256.length, 6, 'a short last piece');
  const wrong = [...sha256];
  wrong[2] = chunkDigest(Buffer.from('not this piece'));
  const checked = new Uint8Array(6);
  await checkPiecesAhead(data, { pieceBytes, sha256: wrong }, checked);
  t.same([...checked], [1, 1, 0, 1, 1, 1], 'the mismatching piece is left for the read to hash and refuse');
  t.match(checkPieces(data, { pieceBytes, sha256: wrong }, 2 * pieceBytes, 2 * pieceBytes + 10, checked), /piece 2: sha256/, 'and the read that reaches it does');
  const again = new Uint8Array([0, 1, 0, 0, 0, 0]);
  await checkPiecesAhead(data, { pieceBytes, sha256 }, again);
  t.same([...again], [1, 1, 1, 1, 1, 1], 'all pieces of a good chunk');
});
