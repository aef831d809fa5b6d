import t from 'tap';
import { ERRNO } from '../../src/fuse/index.js';
import { clipFuseClass, type FuseOps } from '../../src/fuse/native-fuse.js';

// Constructing ClipFuse does not mount; the reply helpers can be driven directly.
const ops = {
  getxattr: (_p: string, name: string, _pos: number, cb: (err: number, v?: Buffer) => void) => (name === 'user.a' ? cb(0, Buffer.from('hello')) : cb(0)),
  listxattr: (_p: string, cb: (err: number, names?: string[]) => void) => cb(0, ['user.a', 'trusted.overlay.opaque']),
} as unknown as FuseOps;
const fuse = new (clipFuseClass())('/nonexistent', ops, { fsname: 'clip:x', subtype: 'clip', allowOther: true, defaultPermissions: true, kernelCache: true, entryTimeout: 5, attrTimeout: 5, timeout: false, debug: false }, ['ro', 'use_ino']);

const reply = (fn: (signal: (r: number) => void) => void): Promise<number> => new Promise((resolve) => fn((r) => resolve(r)));

t.test('mount options carry the ones fuse-native does not know', async (t) => {
  const opts = fuse._fuseOptions();
  for (const o of ['allow_other', 'default_permissions', 'kernel_cache', 'fsname=clip:x', 'subtype=clip', 'entry_timeout=5', 'attr_timeout=5', 'ro', 'use_ino']) {
    t.ok(opts.split(/[-,]o?/).includes(o), o);
  }
});

t.test('getxattr honours the caller buffer size', async (t) => {
  t.equal(await reply((s) => fuse._op_getxattr(s, '/f', 'user.a', Buffer.alloc(0), 0)), 5, 'size probe');
  t.equal(await reply((s) => fuse._op_getxattr(s, '/f', 'user.a', Buffer.alloc(3), 0)), ERRNO.ERANGE);
  const buf = Buffer.alloc(8);
  t.equal(await reply((s) => fuse._op_getxattr(s, '/f', 'user.a', buf, 0)), 5);
  t.equal(buf.toString('utf8', 0, 5), 'hello');
  t.equal(await reply((s) => fuse._op_getxattr(s, '/f', 'user.none', buf, 0)), ERRNO.ENODATA);
});

t.test('listxattr honours the caller buffer size', async (t) => {
  const need = 'user.a\0trusted.overlay.opaque\0'.length;
  t.equal(await reply((s) => fuse._op_listxattr(s, '/f', Buffer.alloc(0))), need);
  t.equal(await reply((s) => fuse._op_listxattr(s, '/f', Buffer.alloc(need - 1))), ERRNO.ERANGE);
  const buf = Buffer.alloc(64);
  t.equal(await reply((s) => fuse._op_listxattr(s, '/f', buf)), need);
  t.equal(buf.toString('latin1', 0, need), 'user.a\0trusted.overlay.opaque\0');
});
