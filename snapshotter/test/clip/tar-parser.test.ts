import t from 'tap';
import { ClipError } from '../../src/errors/index.js';
import { TarParser, type TarEntry } from '../../src/clip/index.js';
import { expectClipError, gnuLong, header, member, pax, tar } from './tar-fixtures.js';

function parse(buf: Buffer, chunk = buf.length): TarEntry[] {
  const out: TarEntry[] = [];
  const p = new TarParser((e) => out.push(e));
  for (let i = 0; i < buf.length; i += chunk) p.push(buf.subarray(i, i + chunk));
  p.end();
  return out;
}

t.test('ustar members and data offsets, whatever the chunking', async (t) => {
  const buf = tar(
    member({ name: 'dir/', type: '5', mode: 0o755 }),
    member({ name: 'dir/a.txt', mode: 0o4755, uid: 1000, gid: 100 }, 'hello world'),
    member({ name: 'dir/link', type: '2', linkname: 'a.txt' }),
    member({ name: 'dev', type: '3', devMajor: 1, devMinor: 3 }),
    member({ name: 'b.txt' }, Buffer.alloc(1000, 7)),
  );
  for (const chunk of [buf.length, 1, 7, 511, 513]) {
    const es = parse(buf, chunk);
    t.equal(es.length, 5);
    const a = es[1]!;
    t.equal(a.name, 'dir/a.txt');
    t.equal(a.mode, 0o4755);
    t.equal(a.uid, 1000);
    t.equal(a.gid, 100);
    t.equal(buf.toString('utf8', a.dataOffset, a.dataOffset + a.size), 'hello world');
    t.equal(es[2]!.linkname, 'a.txt');
    t.same([es[3]!.devMajor, es[3]!.devMinor], [1, 3]);
    const b = es[4]!;
    t.ok(buf.subarray(b.dataOffset, b.dataOffset + b.size).equals(Buffer.alloc(1000, 7)));
  }
});

t.test('ustar prefix joins the name', async (t) => {
  const es = parse(tar(member({ name: 'file', prefix: 'some/deep/dir' }, 'x')));
  t.equal(es[0]!.name, 'some/deep/dir/file');
});

t.test('PAX local header overrides and binary xattrs', async (t) => {
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x0a, 0xff, 0x3d, 0x20, 0x00]);
  const long = 'p/'.repeat(150) + 'name-é';
  const buf = tar(
    pax([
      ['path', long], ['linkpath', 'target'], ['uid', '3000000'], ['gid', '42'], ['uname', 'alice'], ['gname', 'staff'],
      ['mtime', '1700000000.123456789'], ['SCHILY.xattr.security.capability', cap], ['SCHILY.xattr.user.k', 'v'],
      ['atime', '1.5'],
    ]),
    member({ name: 'short', type: '2', linkname: 'ignored' }),
    member({ name: 'plain' }, 'data'),
  );
  const [e, plain] = parse(buf);
  t.equal(e!.name, long);
  t.equal(e!.linkname, 'target');
  t.equal(e!.uid, 3000000);
  t.equal(e!.gid, 42);
  t.equal(e!.uname, 'alice');
  t.equal(e!.gname, 'staff');
  t.equal(e!.mtimeSec, 1700000000);
  t.equal(e!.mtimeNsec, 123456789);
  t.equal(e!.xattrs.length, 2);
  t.ok(e!.xattrs[0]!.value.equals(cap), 'binary xattr value intact');
  t.equal(e!.xattrs[0]!.name, 'security.capability');
  t.equal(plain!.name, 'plain', 'local header applies to one entry only');
  t.equal(plain!.xattrs.length, 0);
});

t.test('PAX size overrides the header size, negative fractional mtime', async (t) => {
  const data = Buffer.alloc(700, 1);
  const buf = tar(pax([['size', '700'], ['mtime', '-1.25']]), header({ name: 'f', size: 0 }), data, Buffer.alloc(324), member({ name: 'g' }, 'z'));
  const [f, g] = parse(buf);
  t.equal(f!.size, 700);
  t.equal(f!.mtimeSec, -2);
  t.equal(f!.mtimeNsec, 750000000);
  t.equal(g!.name, 'g');
  t.equal(buf.toString('utf8', g!.dataOffset, g!.dataOffset + 1), 'z');
});

t.test('PAX global header applies to every later entry; local overrides it', async (t) => {
  const buf = tar(
    pax([['uname', 'global'], ['SCHILY.xattr.user.g', '1']], 'g'),
    member({ name: 'a' }),
    pax([['uname', 'local'], ['SCHILY.xattr.user.g', '']]),
    member({ name: 'b' }),
    member({ name: 'c' }),
  );
  const [a, b, c] = parse(buf);
  t.equal(a!.uname, 'global');
  t.equal(a!.xattrs.length, 1);
  t.equal(b!.uname, 'local');
  t.equal(b!.xattrs.length, 0, 'empty value deletes an inherited xattr');
  t.equal(c!.uname, 'global');
});

t.test('GNU long name and long link', async (t) => {
  const name = 'd/'.repeat(200) + 'file';
  const link = 'l/'.repeat(120) + 'target';
  const es = parse(tar(gnuLong('L', name), gnuLong('K', link), member({ name: 'trunc', type: '2', gnu: true })));
  t.equal(es.length, 1);
  t.equal(es[0]!.name, name);
  t.equal(es[0]!.linkname, link);
});

t.test('base-256 numeric fields', async (t) => {
  const es = parse(tar(member({ name: 'big', uid: 2 ** 33, gid: 7, mtime: -100, base256: ['uid', 'mtime'] }, 'abc')));
  t.equal(es[0]!.uid, 2 ** 33);
  t.equal(es[0]!.mtimeSec, -100);
  t.equal(es[0]!.size, 3);
  const sized = parse(tar(member({ name: 's', base256: ['size'] }, 'abcd')));
  t.equal(sized[0]!.size, 4);
});

t.test('sparse files are rejected clearly', async (t) => {
  expectClipError(t, () => parse(tar(member({ name: 'sparse', type: 'S', gnu: true }))), 'invalid_argument', 'CLIP_TAR_SPARSE_UNSUPPORTED');
  expectClipError(t, () => parse(tar(pax([['GNU.sparse.major', '1'], ['GNU.sparse.minor', '0']]), member({ name: 'f' }))), 'invalid_argument', 'CLIP_TAR_SPARSE_UNSUPPORTED');
});

t.test('truncated streams', async (t) => {
  const full = tar(member({ name: 'a' }, Buffer.alloc(2000, 1)), member({ name: 'b' }, 'x'));
  for (const cut of [100, 512, 1000, 2560 + 100]) {
    expectClipError(t, () => parse(full.subarray(0, cut)), 'data_corrupt', 'CLIP_TAR_TRUNCATED');
  }
  expectClipError(t, () => parse(pax([['path', 'x']])), 'data_corrupt', 'CLIP_TAR_TRUNCATED');
  t.equal(parse(full.subarray(0, full.length - 1024)).length, 2, 'missing end blocks at a boundary is accepted');
});

t.test('bad checksum, bad octal, bad PAX records', async (t) => {
  expectClipError(t, () => parse(tar(member({ name: 'a', badChecksum: true }))), 'data_corrupt', 'CLIP_TAR_BAD_HEADER');
  const h = header({ name: 'a' });
  h.write('9', 124, 'latin1');
  expectClipError(t, () => parse(tar(h)), 'data_corrupt', 'CLIP_TAR_BAD_HEADER');
  const badPax = Buffer.concat([header({ name: 'p', type: 'x', size: 10 }), Buffer.from('99 path=x\n'), Buffer.alloc(502)]);
  expectClipError(t, () => parse(tar(badPax, member({ name: 'a' }))), 'data_corrupt', 'CLIP_TAR_BAD_PAX');
  const huge = header({ name: 'p', type: 'x', size: 1 << 30 });
  expectClipError(t, () => parse(tar(huge)), 'invalid_argument', 'CLIP_TAR_HEADER_TOO_LARGE');
});

t.test('random corruption never crashes the parser', async (t) => {
  const base = tar(pax([['path', 'x/y'], ['SCHILY.xattr.user.a', 'b']]), gnuLong('L', 'n'.repeat(300)), member({ name: 'a' }, Buffer.alloc(3000, 3)), member({ name: 'b', type: '5' }));
  let seed = 12345;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  let errors = 0;
  for (let i = 0; i < 3000; i++) {
    const buf = Buffer.from(base);
    for (let k = 0; k <= rand(4); k++) buf[rand(buf.length)] = rand(256);
    try {
      parse(buf.subarray(0, buf.length - rand(600)), 1 + rand(1024));
    } catch (err) {
      if (!(err instanceof ClipError)) t.fail(`non-ClipError: ${String(err)}`);
      errors++;
    }
  }
  t.ok(errors > 0, `corruptions detected (${errors})`);
});
