import t from 'tap';
import { ERRNO, makedev, statOf, toErrno, toIndexPath } from '../../src/fuse/index.js';
import { kindOf, type ErrorKind } from '../../src/errors/index.js';
import { entry } from './fake-index.js';

t.test('statOf maps each entry type to mode bits, size, rdev and blocks', async (t) => {
  const file = statOf(entry({ type: 'file', path: 'bin/su', mode: 0o4755, uid: 7, gid: 9, size: 5000, dataOffset: 512, mtimeSec: 1_600_000_000, mtimeNsec: 123_456_789 }, 3));
  t.equal(file.mode, 0o104755, 'setuid kept, S_IFREG');
  t.same([file.uid, file.gid, file.size, file.ino, file.blocks], [7, 9, 5000, 4, 16]);
  t.equal(file.mtime, 1_600_000_000_123, 'mtime in ms');
  t.equal(statOf(entry({ type: 'dir', path: 'tmp', mode: 0o1777, opaque: false, childCount: 0, nlink: 3 }, 1)).mode, 0o41777, 'sticky dir');
  t.equal(statOf(entry({ type: 'dir', path: 'd', opaque: false, childCount: 0, nlink: 3 }, 1)).nlink, 3);
  const link = statOf(entry({ type: 'symlink', path: 'l', mode: 0o777, target: 'ünï/x' }, 1));
  t.same([link.mode, link.size], [0o120777, Buffer.byteLength('ünï/x')], 'symlink size is the UTF-8 length');
  const chr = statOf(entry({ type: 'char', path: 'dev/null', mode: 0o666, devMajor: 1, devMinor: 3 }, 1));
  t.same([chr.mode, chr.rdev, chr.size], [0o20666, 0x103, 0]);
  t.equal(statOf(entry({ type: 'block', path: 'b', devMajor: 8, devMinor: 300 }, 1)).rdev, makedev(8, 300));
  t.equal(makedev(8, 300), (300 & 0xff) | (8 << 8) | ((300 & ~0xff) << 12));
  t.equal(statOf(entry({ type: 'fifo', path: 'p' }, 1)).mode & 0o170000, 0o010000);
  const wh = statOf(entry({ type: 'whiteout', path: 'gone' }, 1));
  t.same([wh.mode & 0o170000, wh.rdev], [0o020000, 0], 'whiteout is a 0/0 char device');
  const hl = statOf(entry({ type: 'hardlink', path: 'h', linkedType: 'file', target: 'f', size: 10, dataOffset: 0, devMajor: 0, devMinor: 0, inode: 42, nlink: 3 }, 9));
  t.same([hl.mode & 0o170000, hl.ino, hl.nlink, hl.size], [0o100000, 42, 3, 10], 'hardlink shares inode and nlink');
});

t.test('toErrno covers every kind', async (t) => {
  const expected: Record<ErrorKind, number> = {
    not_found: ERRNO.ENOENT, already_exists: ERRNO.EEXIST, invalid_argument: ERRNO.EINVAL, failed_precondition: ERRNO.EPERM,
    unimplemented: ERRNO.ENOSYS, unavailable: ERRNO.EIO, data_corrupt: ERRNO.EIO, internal: ERRNO.EIO,
  };
  for (const [kind, errno] of Object.entries(expected)) t.equal(toErrno(kind as ErrorKind), errno, kind);
});

t.test('toIndexPath refuses anything that could leave the layer', async (t) => {
  t.equal(toIndexPath('/'), '');
  t.equal(toIndexPath('/a/b.c/..d'), 'a/b.c/..d');
  for (const bad of ['/..', '/a/../b', '/a/.', '/./a', '//a', 'a', '/a/', '/a\0b', '']) {
    let kind = 'none';
    try {
      toIndexPath(bad);
    } catch (err) {
      kind = kindOf(err);
    }
    t.equal(kind, 'invalid_argument', JSON.stringify(bad));
  }
});
