import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chunkCrc, decodeBlob, decodeChunk, decodeManifest, encodeBlob, encodeChunk, encodeManifest } from '../../src/contentcache/chunk-codec.js';

t.test('chunks round-trip; compressible data is LZ4, random data stays raw', async (t) => {
  const text = Buffer.from('hello layer\n'.repeat(5000));
  const packed = await encodeChunk(text);
  t.equal(packed[0], 1, 'lz4');
  t.ok(packed.length < text.length / 5);
  t.same(await decodeChunk(packed, text.length, { crc32: chunkCrc(text) }), { type: 'ok', data: text });
  const noise = randomBytes(10_000);
  const raw = await encodeChunk(noise);
  t.equal(raw[0], 0, 'raw');
  t.same(await decodeChunk(raw, noise.length, { crc32: chunkCrc(noise) }), { type: 'ok', data: noise });
});

t.test('damaged chunks are reported corrupt, never returned', async (t) => {
  const text = Buffer.from('abc'.repeat(10_000));
  const crc = chunkCrc(text);
  const packed = await encodeChunk(text);
  const flipped = Buffer.from(packed);
  flipped.writeUInt8(flipped.readUInt8(flipped.length - 3) ^ 0xff, flipped.length - 3);
  t.equal((await decodeChunk(flipped, text.length, { crc32: crc })).type, 'corrupt', 'bit flip');
  t.equal((await decodeChunk(packed.subarray(0, packed.length - 5), text.length, { crc32: crc })).type, 'corrupt', 'truncated');
  t.equal((await decodeChunk(packed, text.length - 1, { crc32: crc })).type, 'corrupt', 'wrong length');
  t.equal((await decodeChunk(packed, text.length, { crc32: crc ^ 1 })).type, 'corrupt', 'wrong crc');
  t.equal((await decodeChunk(Buffer.from([7, 1, 2]), 2, { crc32: 0 })).type, 'corrupt', 'unknown encoding');
});

t.test('manifests: round trip and rejection of malformed ones', async (t) => {
  const m = { v: 1 as const, size: 10, chunkSizeBytes: 4, chunks: 3, crc32: [1, 2, 3] };
  t.same(decodeManifest(encodeManifest(m), 'k'), { type: 'ok', manifest: m });
  const malformed = { type: 'malformed' };
  t.same(decodeManifest('{', 'k'), malformed);
  t.same(decodeManifest('null', 'k'), malformed);
  t.same(decodeManifest(JSON.stringify({ ...m, chunks: 2, crc32: [1, 2] }), 'k'), malformed, 'chunk count must match size');
  t.same(decodeManifest(JSON.stringify({ ...m, crc32: [1] }), 'k'), malformed);
  t.same(decodeManifest(JSON.stringify({ ...m, v: 2 }), 'k'), malformed);
  t.same(decodeManifest(JSON.stringify({ ...m, chunkSizeBytes: 0 }), 'k'), malformed);
});

t.test('blobs round-trip and are verified', async (t) => {
  const data = Buffer.from('index '.repeat(1000));
  const enc = await encodeBlob(data);
  t.ok(enc.length < data.length);
  t.same(await decodeBlob(enc), { type: 'ok', data });
  const bad = Buffer.from(enc);
  bad.writeUInt8(bad.readUInt8(2) ^ 1, 2);
  t.equal((await decodeBlob(bad)).type, 'corrupt');
  t.equal((await decodeBlob(Buffer.alloc(3))).type, 'corrupt');
});

t.test('an LZ4 value is not inflated at a size it declares for itself (issue 12)', async (t) => {
  const text = Buffer.from('abc'.repeat(10_000));
  const packed = await encodeChunk(text);
  // The lz4-napi size prefix (after the encoding byte) claims 3 GiB: refused before allocating.
  const lying = Buffer.from(packed);
  lying.writeUInt32LE(3 * 1024 ** 3, 1);
  t.match(await decodeChunk(lying, 3 * 1024 ** 3, { crc32: 0 }), { type: 'corrupt', reason: /more than .* can inflate to/ });
  t.match(await decodeChunk(lying, text.length, { crc32: chunkCrc(text) }), { type: 'corrupt', reason: /expected 30000/ });
  const blob = await encodeBlob(text);
  const lyingBlob = Buffer.from(blob);
  lyingBlob.writeUInt32BE(3 * 1024 ** 3, 5);
  lyingBlob.writeUInt32LE(3 * 1024 ** 3, 9);
  t.match(await decodeBlob(lyingBlob), { type: 'corrupt', reason: /can inflate to/ });
  t.same(await decodeBlob(blob), { type: 'ok', data: text }, 'an honest blob still decodes');
});
