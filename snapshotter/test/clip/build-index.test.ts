import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { buildIndex, decodeIndex, encodeIndex, type BuiltEntry, type ClipIndex } from '../../src/clip/index.js';
import { member, pax, rejectsClipError, tar } from './tar-fixtures.js';

const stream = (buf: Buffer, chunk = 4096): Readable =>
  Readable.from((function* () { for (let i = 0; i < buf.length; i += chunk) yield buf.subarray(i, i + chunk); })());
const byPath = (idx: ClipIndex): Map<string, BuiltEntry> => new Map(idx.entries.map((e) => [e.path, e]));

const layer = tar(
  member({ name: './', type: '5', mode: 0o755 }),
  member({ name: './usr/bin/tool', mode: 0o4755, uid: 1000, gid: 1000 }, 'tool-bytes'),
  member({ name: './usr/bin/alias', type: '1', linkname: './usr/bin/tool' }),
  member({ name: './tmp/', type: '5', mode: 0o1777 }),
  member({ name: './etc/passwd' }, 'old'),
  member({ name: './etc/passwd' }, 'new contents'),
  member({ name: './etc/.wh.shadow' }),
  member({ name: './var/.wh..wh..opq' }),
  member({ name: './dev/null', type: '3', devMajor: 1, devMinor: 3 }),
  member({ name: './run/fifo', type: '6' }),
  member({ name: 'etc/link', type: '2', linkname: '/etc/passwd' }),
);

t.test('builds the index of a plain, gzip and zstd layer with the same diffID', async (t) => {
  const diffId = `sha256:${createHash('sha256').update(layer).digest('hex')}`;
  const zst = execFileSync('zstd', ['-q', '-c'], { input: layer });
  for (const [compression, blob] of [['none', layer], ['gzip', gzipSync(layer)], ['zstd', zst]] as const) {
    const idx = await buildIndex(stream(blob, 1000));
    t.equal(idx.meta.compression, compression);
    t.equal(idx.meta.diffId, diffId);
    t.equal(idx.meta.uncompressedSize, layer.length);
    t.equal(idx.meta.compressedDigest, `sha256:${createHash('sha256').update(blob).digest('hex')}`);
  }
});

t.test('entry semantics: replacement, hardlinks, whiteouts, implicit parents', async (t) => {
  const idx = await buildIndex(stream(layer));
  const m = byPath(idx);
  t.equal(idx.entries[0]!.path, '', 'root first');
  const passwd = m.get('etc/passwd')!;
  t.equal(layer.toString('utf8', passwd.dataOffset, passwd.dataOffset + passwd.size), 'new contents', 'later entry wins');
  const tool = m.get('usr/bin/tool')!;
  t.equal(tool.mode, 0o4755);
  const alias = m.get('usr/bin/alias')!;
  t.equal(alias.type, 'hardlink');
  t.equal(alias.link, 'usr/bin/tool');
  t.equal(alias.dataOffset, tool.dataOffset);
  t.equal(alias.inodeGroup, tool.inodeGroup);
  t.equal(m.get('tmp')!.mode, 0o1777);
  t.equal(m.get('etc/shadow')!.type, 'whiteout');
  t.notOk(m.has('etc/.wh.shadow'));
  t.equal(m.get('var')!.opaque, true);
  t.equal(m.get('usr')!.type, 'dir', 'implicit parent synthesized');
  t.equal(m.get('usr')!.mode, 0o755);
  t.equal(m.get('dev/null')!.devMinor, 3);
  t.equal(m.get('etc/link')!.link, '/etc/passwd');
  const r = decodeIndex(encodeIndex(idx));
  t.equal(r.inodeOf('usr/bin/alias'), r.inodeOf('usr/bin/tool'));
  t.equal(r.linkCount('usr/bin/tool'), 2);
  t.same(r.readdir('usr/bin')!.map((e) => e.name), ['alias', 'tool']);
});

t.test('a file replacing a directory drops its subtree; a whiteout never hides a member of its own layer', async (t) => {
  const idx = await buildIndex(stream(tar(
    member({ name: 'd/', type: '5' }), member({ name: 'd/x' }, 'x'), member({ name: 'd' }, 'file'),
    member({ name: 'k' }, 'k'), member({ name: '.wh.k' }),
  )));
  const m = byPath(idx);
  t.equal(m.get('d')!.type, 'file');
  t.notOk(m.has('d/x'));
  t.equal(m.get('k')!.type, 'file');
});

t.test('hostile tars give clear errors', async (t) => {
  const cases: Array<[string, Buffer, string, string]> = [
    ['dotdot', tar(member({ name: 'a/../../etc/x' })), 'invalid_argument', 'CLIP_TAR_PATH_ESCAPE'],
    ['absolute', tar(member({ name: '/etc/x' })), 'invalid_argument', 'CLIP_TAR_ABSOLUTE_PATH'],
    ['NUL in PAX path', tar(pax([['path', 'a\0b']]), member({ name: 'x' })), 'invalid_argument', 'CLIP_TAR_BAD_PATH'],
    ['huge name', tar(pax([['path', 'n/'.repeat(3000)]]), member({ name: 'x' })), 'invalid_argument', 'CLIP_TAR_NAME_TOO_LONG'],
    ['hardlink to missing', tar(member({ name: 'l', type: '1', linkname: 'nope' })), 'invalid_argument', 'CLIP_TAR_HARDLINK_MISSING'],
    ['hardlink to later', tar(member({ name: 'l', type: '1', linkname: 'f' }), member({ name: 'f' })), 'invalid_argument', 'CLIP_TAR_HARDLINK_MISSING'],
    ['hardlink to dir', tar(member({ name: 'd', type: '5' }), member({ name: 'l', type: '1', linkname: 'd' })), 'invalid_argument', 'CLIP_TAR_HARDLINK_BAD_TARGET'],
    ['hardlink escape', tar(member({ name: 'l', type: '1', linkname: '../x' })), 'invalid_argument', 'CLIP_TAR_PATH_ESCAPE'],
    ['parent is a file', tar(member({ name: 'f' }), member({ name: 'f/x' })), 'invalid_argument', 'CLIP_TAR_PARENT_NOT_DIR'],
    ['truncated', tar(member({ name: 'f' }, Buffer.alloc(5000))).subarray(0, 3000), 'data_corrupt', 'CLIP_TAR_TRUNCATED'],
    ['sparse', tar(member({ name: 's', type: 'S', gnu: true })), 'invalid_argument', 'CLIP_TAR_SPARSE_UNSUPPORTED'],
    ['bad gzip', Buffer.concat([gzipSync(layer).subarray(0, 200), Buffer.alloc(100, 0x55)]), 'data_corrupt', 'CLIP_LAYER_DECOMPRESS_FAILED'],
  ];
  for (const [name, buf, kind, code] of cases) {
    t.comment(name);
    await rejectsClipError(t, buildIndex(stream(buf)), kind, code);
  }
});

t.test('compressed digest is verified when given', async (t) => {
  await rejectsClipError(t, buildIndex(stream(layer), { compressedDigest: 'sha256:' + '0'.repeat(64) }), 'data_corrupt', 'CLIP_LAYER_DIGEST_MISMATCH');
});

t.test('an aborted build rejects with unavailable', async (t) => {
  const ac = new AbortController();
  // Never produces: only the abort ends it, sent once the build is waiting for data.
  const slow = new Readable({ read() { setImmediate(() => ac.abort()); } });
  const p = buildIndex(slow, { signal: ac.signal });
  await rejectsClipError(t, p, 'unavailable', 'CLIP_BUILD_ABORTED');
});

t.test('reading a failing source stream is unavailable, not corrupt', async (t) => {
  const failing = new Readable({ read() { this.destroy(new Error('connection reset')); } });
  await rejectsClipError(t, buildIndex(failing), 'unavailable', 'CLIP_LAYER_READ');
});
