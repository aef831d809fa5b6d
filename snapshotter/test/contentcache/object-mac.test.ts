import t from 'tap';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  checkPieces, chunkCheck, chunkCrc, decodeBlob, decodeChunk, decodeManifest, encodeBlob, encodeChunk, encodeManifest, pieceDigests, signedManifest,
} from '../../src/contentcache/chunk-codec.js';
import { chunkDigest, loadMacKeys, ObjectMac } from '../../src/contentcache/object-mac.js';

const keyA = randomBytes(32);
const keyB = randomBytes(32);

t.test('a signed manifest verifies only for its own name and key; v1 is refused with a key', async (t) => {
  const mac = new ObjectMac([keyA]);
  const digests = [chunkDigest(Buffer.from('a')), chunkDigest(Buffer.from('b'))];
  const m = signedManifest(mac, 'sha256:layer1', 8, 4, digests);
  const text = encodeManifest(m);
  t.same(decodeManifest(text, 'sha256:layer1', mac), { type: 'ok', manifest: m });
  t.match(decodeManifest(text, 'sha256:layer2', mac), { type: 'unverified' }, 'copied onto another layer key');
  t.match(decodeManifest(text, 'sha256:layer1', new ObjectMac([keyB])), { type: 'unverified' }, 'another cluster key');
  const forged = { ...m, sha256: [digests[1], digests[0]] };
  t.match(decodeManifest(JSON.stringify(forged), 'sha256:layer1', mac), { type: 'unverified' }, 'digests changed, tag kept');
  const v1 = encodeManifest({ v: 1, size: 8, chunkSizeBytes: 4, chunks: 2, crc32: [1, 2] });
  t.match(decodeManifest(v1, 'sha256:layer1', mac), { type: 'unverified', reason: /no tag/ }, 'a self-consistent v1 manifest is not trusted');
  t.match(decodeManifest(text, 'sha256:layer1'), { type: 'malformed' }, 'a node without a key reads v1 only');
});

t.test('v3: a digest per piece, signed; a read checks only the pieces it covers', async (t) => {
  const mac = new ObjectMac([keyA]);
  // Two 16 KiB chunks of 4 KiB pieces and a 5000-byte last chunk: 4 + 4 + 2 pieces.
  const data = randomBytes(2 * 16384 + 5000);
  const chunks = [0, 1, 2].map((i) => data.subarray(i * 16384, (i + 1) * 16384));
  const digests = chunks.flatMap((c) => pieceDigests(c, 4096));
  t.equal(digests.length, 10);
  const m = signedManifest(mac, 'sha256:layer1', data.length, 16384, digests, 4096);
  t.match(m, { v: 3, chunks: 3, pieceBytes: 4096 });
  const text = encodeManifest(m);
  t.same(decodeManifest(text, 'sha256:layer1', mac), { type: 'ok', manifest: m });
  t.match(decodeManifest(text, 'sha256:layer2', mac), { type: 'unverified' }, 'copied onto another layer key');
  t.match(decodeManifest(JSON.stringify({ ...m, sha256: [...digests.slice(1), digests[0]] }), 'sha256:layer1', mac), { type: 'unverified' }, 'digests reordered, tag kept');
  t.match(decodeManifest(JSON.stringify({ ...m, pieceBytes: 8192 }), 'sha256:layer1', mac), { type: 'malformed' }, 'piece size changed: the digest count no longer fits');
  t.match(decodeManifest(JSON.stringify({ ...m, pieceBytes: 100 }), 'sha256:layer1', mac), { type: 'malformed' }, 'pieces under 4 KiB');
  t.match(decodeManifest(JSON.stringify({ ...m, v: 2 }), 'sha256:layer1', mac), { type: 'malformed' }, 'relabelled v2');

  const check = chunkCheck(m, 2);
  t.same(check, { pieces: { pieceBytes: 4096, sha256: digests.slice(8) } }, 'the last chunk\'s two pieces');
  const decoded = await decodeChunk(await encodeChunk(chunks[2]!), chunks[2]!.length, check);
  t.equal(decoded.type, 'ok');
  const checked = new Uint8Array(2);
  t.equal(checkPieces(chunks[2]!, { pieceBytes: 4096, sha256: digests.slice(8) }, 100, 200, checked), undefined, 'a read in the first piece');
  t.same([...checked], [1, 0], 'checked only that piece');
  const planted = Buffer.from(chunks[1]!);
  planted[3 * 4096 + 7] = (planted[3 * 4096 + 7] ?? 0) ^ 1;
  const pieces1 = { pieceBytes: 4096, sha256: digests.slice(4, 8) };
  const c1 = new Uint8Array(4);
  t.equal(checkPieces(planted, pieces1, 0, 3 * 4096, c1), undefined, 'the untouched pieces pass');
  t.match(checkPieces(planted, pieces1, 3 * 4096, 3 * 4096 + 10, c1), /^piece 3: sha256/, 'the changed piece fails when a read reaches it');
  t.same([...c1], [1, 1, 1, 0]);
  t.match(await decodeChunk(await encodeChunk(chunks[1]!), chunks[1]!.length, { pieces: { pieceBytes: 4096, sha256: digests.slice(4, 7) } }), { type: 'corrupt', reason: /pieces/ }, 'a piece count that does not fit the chunk');
});

t.test('rotation: the old key still verifies, the first key signs', async (t) => {
  const old = new ObjectMac([keyA]);
  const rotating = new ObjectMac([keyB, keyA]);
  const m = signedManifest(old, 'k', 4, 4, [chunkDigest(Buffer.from('abcd'))]);
  t.equal(decodeManifest(encodeManifest(m), 'k', rotating).type, 'ok', 'signed with the old key, accepted during rotation');
  const fresh = signedManifest(rotating, 'k', 4, 4, [chunkDigest(Buffer.from('abcd'))]);
  t.equal(decodeManifest(encodeManifest(fresh), 'k', new ObjectMac([keyB])).type, 'ok', 'new objects are signed with the new key');
  t.equal(decodeManifest(encodeManifest(fresh), 'k', old).type, 'unverified', 'a node with only the old key refuses them');
});

t.test('chunks are checked against the signed digest, whatever CRC they carry', async (t) => {
  const data = Buffer.from('true bytes '.repeat(1000));
  const planted = Buffer.from('fake bytes '.repeat(1000));
  const check = { sha256: chunkDigest(data) };
  t.same(await decodeChunk(await encodeChunk(data), data.length, check), { type: 'ok', data });
  t.match(await decodeChunk(await encodeChunk(planted), planted.length, check), { type: 'corrupt', reason: /sha256/ });
  t.equal(chunkCrc(planted) === chunkCrc(data), false);
});

t.test('signed blobs: bound to their key name, refused unsigned or under another key', async (t) => {
  const mac = new ObjectMac([keyA]);
  const data = Buffer.from('index bytes '.repeat(300));
  const blob = await encodeBlob(data, { mac, name: 'clip-index/sha256:aa' });
  t.same(await decodeBlob(blob, { mac, name: 'clip-index/sha256:aa' }), { type: 'ok', data });
  t.match(await decodeBlob(blob, { mac, name: 'clip-index/sha256:bb' }), { type: 'unverified' }, 'moved to another key');
  t.match(await decodeBlob(blob, { mac: new ObjectMac([keyB]), name: 'clip-index/sha256:aa' }), { type: 'unverified' });
  t.match(await decodeBlob(await encodeBlob(data), { mac, name: 'clip-index/sha256:aa' }), { type: 'unverified', reason: /no tag/ }, 'v1 blob with a valid CRC');
  const flipped = Buffer.from(blob);
  flipped.writeUInt8(flipped.readUInt8(5) ^ 1, 5);
  t.match(await decodeBlob(flipped, { mac, name: 'clip-index/sha256:aa' }), { type: 'unverified' }, 'tag bit flip');
  t.equal((await decodeBlob(blob)).type, 'corrupt', 'a node without a key does not read v2 blobs');
});

t.test('key file: hex or base64 lines, comments, mode 0600 required, 32-byte minimum', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-key-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'key');
  writeFileSync(path, `# new\n${keyB.toString('hex')}\n\n${keyA.toString('base64')}\n`, { mode: 0o600 });
  const mac = loadMacKeys(path);
  t.ok(mac.verify(new ObjectMac([keyA]).sign('x', Buffer.from('y')), 'x', Buffer.from('y')), 'second line accepted');
  t.ok(new ObjectMac([keyB]).verify(mac.sign('x', Buffer.from('y')), 'x', Buffer.from('y')), 'first line signs');
  chmodSync(path, 0o644);
  t.throws(() => loadMacKeys(path), { code: 'CLIP_CONTENT_CACHE_KEY_INVALID', message: /chmod 600/ });
  writeFileSync(join(dir, 'short'), 'abcd\n', { mode: 0o600 });
  t.throws(() => loadMacKeys(join(dir, 'short')), { code: 'CLIP_CONTENT_CACHE_KEY_INVALID' });
  writeFileSync(join(dir, 'empty'), '# nothing\n', { mode: 0o600 });
  t.throws(() => loadMacKeys(join(dir, 'empty')), { code: 'CLIP_CONTENT_CACHE_KEY_INVALID' });
  t.throws(() => loadMacKeys(join(dir, 'absent')), { code: 'CLIP_CONTENT_CACHE_KEY_INVALID' });
});
