/**
 * Issue 12: sizes and counts a hostile layer or index declares are bounded before they are used.
 * The first case is the hang that motivated it: a GNU volume header with a negative base-256 size
 * made the parser step backwards forever.
 */
import { Readable } from 'node:stream';
import t from 'tap';
import { buildIndex, decodeIndex, encodeIndex, TarParser, type TarEntry } from '../../src/clip/index.js';
import { sealIndex } from './index-fixtures.js';
import { expectClipError, header, member, pax, rejectsClipError, tar } from './tar-fixtures.js';

function parse(buf: Buffer, limits = {}): TarEntry[] {
  const out: TarEntry[] = [];
  const p = new TarParser((e) => out.push(e), limits);
  p.push(buf);
  p.end();
  return out;
}

t.test('a GNU volume header with a negative base-256 size is rejected, not looped on', async (t) => {
  const volume = header({ name: 'vol', type: 'V', gnu: true, size: -1024, base256: ['size'] });
  expectClipError(t, () => parse(tar(volume, member({ name: 'a' }, 'x'))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  // The same header in the middle of a real stream, fed in small chunks as a layer download is.
  const stream = tar(member({ name: 'a' }, 'hello'), volume, member({ name: 'b' }, 'x'));
  const p = new TarParser(() => undefined);
  expectClipError(t, () => {
    for (let i = 0; i < stream.length; i += 100) p.push(stream.subarray(i, i + 100));
  }, 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
});

t.test('negative and absurd sizes on every header kind', async (t) => {
  expectClipError(t, () => parse(tar(header({ name: 'f', size: -1, base256: ['size'] }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  expectClipError(t, () => parse(tar(header({ name: 'f', size: 2 ** 45, base256: ['size'] }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  expectClipError(t, () => parse(tar(header({ name: 'p', type: 'x', size: -512, base256: ['size'] }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  expectClipError(t, () => parse(tar(header({ name: 'l', type: 'L', gnu: true, size: -7, base256: ['size'] }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  // A hardlink's size is ignored, but a negative one is still refused rather than trusted.
  expectClipError(t, () => parse(tar(header({ name: 'h', type: '1', linkname: 'f', size: -1, base256: ['size'] }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
  // A PAX size cannot be negative (digits only) but can be absurd.
  expectClipError(t, () => parse(tar(pax([['size', String(2 ** 45)]]), member({ name: 'f' }))), 'data_corrupt', 'CLIP_TAR_SIZE_RANGE');
});

t.test('member count is bounded', async (t) => {
  const three = tar(member({ name: 'a' }), member({ name: 'b' }), member({ name: 'c' }));
  t.equal(parse(three, { maxEntries: 3 }).length, 3, 'at the limit');
  expectClipError(t, () => parse(three, { maxEntries: 2 }), 'invalid_argument', 'CLIP_TAR_TOO_MANY_ENTRIES');
});

t.test('implied parent directories count towards the entry bound', async (t) => {
  const deep = tar(member({ name: `${'d/'.repeat(40)}f` }, 'x'));
  await rejectsClipError(t, buildIndex(Readable.from([deep]), { limits: { maxEntries: 20 } }), 'invalid_argument', 'CLIP_TAR_TOO_MANY_ENTRIES');
  t.equal((await buildIndex(Readable.from([deep]), { limits: { maxEntries: 42 } })).entries.length, 42, 'root + 40 dirs + file fit');
});

t.test('xattrs are bounded per entry and per layer; a global PAX header counts for every member', async (t) => {
  const big = Buffer.alloc(1000, 7);
  expectClipError(t, () => parse(tar(pax([['SCHILY.xattr.user.a', big]]), member({ name: 'f' })), { maxXattrBytesPerEntry: 999 }), 'invalid_argument', 'CLIP_TAR_XATTRS_TOO_LARGE');
  t.equal(parse(tar(pax([['SCHILY.xattr.user.a', big]]), member({ name: 'f' })), { maxXattrBytesPerEntry: 1006 }).length, 1, 'name + value at the limit');
  // One 1 KB global xattr, 100 members: 100 KB of xattrs in the index although the tar holds 1 KB.
  const members = Array.from({ length: 100 }, (_, i) => member({ name: `f${i}` }));
  const global = tar(pax([['SCHILY.xattr.user.g', big]], 'g'), ...members);
  t.equal(parse(global).length, 100, 'fine under the default bound');
  expectClipError(t, () => parse(global, { maxXattrBytesTotal: 50_000 }), 'invalid_argument', 'CLIP_TAR_XATTRS_TOO_LARGE');
});

t.test('index payload size and entry count are bounded before allocation', async (t) => {
  const layer = tar(member({ name: 'a' }, 'x'), member({ name: 'b/c' }, 'y'));
  const encoded = encodeIndex(await buildIndex(Readable.from([layer])));
  t.equal(decodeIndex(encoded).entryCount, 4, 'decodes under the defaults');
  expectClipError(t, () => decodeIndex(encoded, { maxIndexBytes: 64 }), 'invalid_argument', 'CLIP_INDEX_TOO_LARGE');
  expectClipError(t, () => decodeIndex(encoded, { maxEntries: 3 }), 'invalid_argument', 'CLIP_INDEX_TOO_LARGE');
  // An LZ4 block that claims to inflate to 400 MB: refused from its size alone.
  expectClipError(t, () => decodeIndex(sealIndex(Buffer.alloc(100, 1), 400_000_000)), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
});
