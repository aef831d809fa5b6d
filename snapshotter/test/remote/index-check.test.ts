/** Issue 12, deliver 3: an index not built here is compared with its completed layer. */
import t from 'tap';
import { Readable } from 'node:stream';
import { buildIndex, decodeIndex, encodeIndex, type ClipIndex } from '../../src/clip/index.js';
import { checkIndexAgainstLayer, indexDifference, type CompleteLayerRead } from '../../src/remote/index-check.js';
import { member, tar } from '../clip/tar-fixtures.js';

const layerTar = tar(member({ name: 'tool', mode: 0o755 }, '#!/bin/sh\necho tool\n'), member({ name: 'data.txt', mode: 0o644 }, 'layer data\n'));

/** Reads of an in-memory tar that return at most 7 bytes per call (short reads must be completed). */
const readerOf = (bytes: Buffer): CompleteLayerRead => async (buf, bufOffset, length, offset) =>
  bytes.copy(buf, bufOffset, offset, Math.min(bytes.length, offset + Math.min(length, 7)));

const decoded = (idx: ClipIndex) => decodeIndex(encodeIndex(idx));
const forge = (built: ClipIndex, path: string, change: Record<string, unknown>): ClipIndex =>
  ({ ...built, entries: built.entries.map((e) => (e.path === path ? { ...e, ...change } : e)) });

t.test('the true index matches its layer; forged ones do not, and the error says where', async (t) => {
  const built = await buildIndex(Readable.from([layerTar]));
  const ok = await checkIndexAgainstLayer(decoded(built), readerOf(layerTar), layerTar.length);
  t.equal(ok.mismatch, undefined, 'the index the layer gives');
  t.equal(ok.actual.entries.length, built.entries.length, 'the rebuilt index is returned');

  const setuid = await checkIndexAgainstLayer(decoded(forge(built, 'tool', { mode: 0o4755 })), readerOf(layerTar), layerTar.length);
  t.equal(setuid.mismatch?.code, 'CLIP_INDEX_MISMATCH');
  t.equal(setuid.mismatch?.kind, 'data_corrupt');
  t.match(setuid.mismatch?.message, /^index of layer .* does not describe the layer: entry \d+ \("tool"\): mode 2541 vs 493: data corrupt$/, 'names the differing entry and field');
  t.equal(decoded(setuid.actual).lookup('tool')?.mode, 0o755, 'the rebuilt index holds the true mode');

  const tool = built.entries.find((e) => e.path === 'tool')!;
  const moved = forge(built, 'data.txt', { dataOffset: tool.dataOffset, size: tool.size });
  t.match(indexDifference(decoded(moved), decoded(built)), /\("data.txt"\): size \d+ vs 11, dataOffset \d+ vs \d+$/, 'data pointing at another file');
  t.match(indexDifference(decoded(forge(built, 'tool', { uid: 0, gid: 0, xattrs: [{ name: 'security.capability', value: Buffer.from([1, 2]) }] })), decoded(built)), /security\.capability/, 'a planted capability xattr');
  const extra = { ...built, entries: [...built.entries, { ...tool, path: 'zz', inodeGroup: 99 }] };
  t.match(indexDifference(decoded(extra), decoded(built)), /entries vs/, 'an entry the layer does not have');
  t.match(indexDifference(decoded({ ...built, meta: { ...built.meta, uncompressedSize: built.meta.uncompressedSize + 512 } }), decoded(built)), /^size/, 'another size');

  const otherTar = tar(member({ name: 'tool', mode: 0o755 }, '#!/bin/sh\necho TOOL\n'), member({ name: 'data.txt', mode: 0o644 }, 'layer data\n'));
  const other = await checkIndexAgainstLayer(decoded(built), readerOf(otherTar), otherTar.length);
  t.match(other.mismatch?.message, /diffID/, 'another layer under the same index');
});

t.test('a layer that cannot be parsed is no verdict: the check rejects', async (t) => {
  const built = await buildIndex(Readable.from([layerTar]));
  const junk = Buffer.alloc(layerTar.length, 0x41);
  await t.rejects(checkIndexAgainstLayer(decoded(built), readerOf(junk), junk.length), { name: 'ClipError' });
});

t.test('with the diffID the completed layer was verified against, the bytes are not hashed again and that diffID is what the index is compared with', async (t) => {
  const built = await buildIndex(Readable.from([layerTar]));
  const ok = await checkIndexAgainstLayer(decoded(built), readerOf(layerTar), layerTar.length, undefined, built.meta.diffId);
  t.equal(ok.mismatch, undefined, 'the true index, the true diffID');
  const forged = await checkIndexAgainstLayer(decoded(forge(built, 'tool', { mode: 0o4755 })), readerOf(layerTar), layerTar.length, undefined, built.meta.diffId);
  t.equal(forged.mismatch?.code, 'CLIP_INDEX_MISMATCH', 'entries are still compared');

  // A diffID that is not the bytes' hash is taken as given: proof the bytes were not hashed here.
  const other = `sha256:${'ab'.repeat(32)}`;
  const taken = await checkIndexAgainstLayer(decoded(built), readerOf(layerTar), layerTar.length, undefined, other);
  t.equal(taken.actual.meta.diffId, other);
  t.match(taken.mismatch?.message, /diffID/, 'an index claiming another diffID than the verified one is a mismatch');
  const direct = await buildIndex(Readable.from([layerTar]), { verifiedDiffId: other });
  t.same([direct.meta.diffId, direct.meta.compressedDigest, direct.entries.length], [other, '', built.entries.length]);
  const checked = await buildIndex(Readable.from([layerTar]), { verifiedDiffId: other, compressedDigest: built.meta.compressedDigest });
  t.equal(checked.meta.compressedDigest, built.meta.compressedDigest, 'a compressed digest asked for is still computed and checked');
  await t.rejects(buildIndex(Readable.from([layerTar]), { verifiedDiffId: other, compressedDigest: other }), { code: 'CLIP_LAYER_DIGEST_MISMATCH' });
});
