import { pino } from 'pino';
import t from 'tap';
import { unavailable } from '../../src/errors/index.js';
import { ERRNO, LayerOps, type FuseStat } from '../../src/fuse/index.js';
import type { FuseOps } from '../../src/fuse/native-fuse.js';
import type { LayerReader } from '../../src/storage/layer-reader.js';
import { FakeIndex } from './fake-index.js';

const LAYER = Buffer.alloc(4096);
LAYER.write('0123456789abcdef', 1000);

/** A reader over LAYER that can be told to fail or to return short counts. */
function fakeReader(): LayerReader & { calls: Array<[number, number]>; failNext: number; maxChunk: number } {
  const r = {
    layer: { ref: 'x', digest: 'sha256:x', diffId: 'sha256:x', uncompressedSize: LAYER.length },
    calls: [] as Array<[number, number]>,
    failNext: 0,
    maxChunk: Infinity,
    async read(buf: Buffer, bufOffset: number, length: number, offset: number): Promise<number> {
      r.calls.push([length, offset]);
      if (r.failNext > 0) {
        r.failNext--;
        throw unavailable('CLIP_REGISTRY_UNAVAILABLE', 'registry down');
      }
      const n = Math.min(length, r.maxChunk, LAYER.length - offset);
      return LAYER.copy(buf, bufOffset, offset, offset + n);
    },
    async check(): Promise<void> {},
    async close(): Promise<void> {},
  };
  return r;
}

const view = new FakeIndex(
  [
    { type: 'file', path: 'f', size: 16, dataOffset: 1000 },
    { type: 'hardlink', path: 'h', linkedType: 'file', target: 'f', size: 16, dataOffset: 1000, devMajor: 0, devMinor: 0 },
    { type: 'dir', path: 'd', opaque: true, childCount: 2, mode: 0o755 },
    { type: 'whiteout', path: 'd/gone' },
    { type: 'symlink', path: 'd/up', target: '../../../etc/shadow' },
    { type: 'char', path: 'null', devMajor: 1, devMinor: 3 },
  ],
  { f: { 'user.k': 'value', 'security.capability': '\x01\x02' } },
);

function setup(): { ops: FuseOps; layer: LayerOps; reader: ReturnType<typeof fakeReader>; logs: Array<Record<string, unknown>> } {
  const reader = fakeReader();
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const layer = new LayerOps({ view, reader, layer: 'sha256:x', logger });
  return { ops: layer.ops(), layer, reader, logs };
}

const call = <T extends unknown[]>(fn: (cb: (...args: T) => void) => void): Promise<T> => new Promise((resolve) => fn((...args) => resolve(args)));

t.test('getattr and lookups', async (t) => {
  const { ops } = setup();
  const [err, st] = await call<[number, FuseStat?]>((cb) => ops.getattr('/f', cb));
  t.equal(err, 0);
  t.equal(st?.size, 16);
  t.equal((await call<[number]>((cb) => ops.getattr('/missing', cb)))[0], ERRNO.ENOENT);
  t.equal((await call<[number]>((cb) => ops.getattr('/f/child', cb)))[0], ERRNO.ENOTDIR);
  t.equal((await call<[number]>((cb) => ops.getattr('/d/../f', cb)))[0], ERRNO.EINVAL, '.. refused even if it would resolve');
  const [, hl] = await call<[number, FuseStat?]>((cb) => ops.getattr('/h', cb));
  t.equal(hl?.mode, 0o100644);
});

t.test('readdir returns names with stats so d_type is set', async (t) => {
  const { ops } = setup();
  const [err, names, stats] = await call<[number, string[]?, FuseStat[]?]>((cb) => ops.readdir('/d', cb));
  t.equal(err, 0);
  t.same(names, ['.', '..', 'gone', 'up']);
  t.equal(stats?.length, names?.length);
  t.equal((stats?.[2]?.mode ?? 0) & 0o170000, 0o020000, 'whiteout listed as char device');
  t.equal((await call<[number]>((cb) => ops.readdir('/f', cb)))[0], ERRNO.ENOTDIR);
  t.equal((await call<[number]>((cb) => ops.readdir('/nope', cb)))[0], ERRNO.ENOENT);
});

t.test('open, read into the kernel buffer, release', async (t) => {
  const { ops, layer, reader, logs } = setup();
  t.equal((await call<[number]>((cb) => ops.open('/f', 1, cb)))[0], ERRNO.EROFS, 'O_WRONLY');
  t.equal((await call<[number]>((cb) => ops.open('/f', 0o1000, cb)))[0], ERRNO.EROFS, 'O_TRUNC');
  t.equal((await call<[number]>((cb) => ops.open('/d', 0, cb)))[0], ERRNO.EISDIR);
  const [err, fd] = await call<[number, number?]>((cb) => ops.open('/h', 0, cb));
  t.equal(err, 0);
  t.ok(fd !== undefined && fd > 0, 'handle numbers start at 1');
  t.equal(layer.openHandles, 1);
  const buf = Buffer.alloc(64);
  t.equal((await call<[number]>((cb) => ops.read('/h', fd ?? 0, buf, 64, 4, cb)))[0], 12, 'clamped to the file size');
  t.equal(buf.toString('utf8', 0, 12), '456789abcdef');
  t.same(reader.calls.at(-1), [12, 1004], 'read at dataOffset + pos');
  t.equal((await call<[number]>((cb) => ops.read('/h', fd ?? 0, buf, 64, 16, cb)))[0], 0, 'EOF');
  reader.maxChunk = 5;
  t.equal((await call<[number]>((cb) => ops.read('/h', fd ?? 0, buf, 16, 0, cb)))[0], 16, 'short reader counts are joined');
  t.equal(buf.toString('utf8', 0, 16), '0123456789abcdef');
  reader.failNext = 1;
  t.equal((await call<[number]>((cb) => ops.read('/h', fd ?? 0, buf, 16, 0, cb)))[0], ERRNO.EIO, 'reader failure → EIO');
  t.match(logs.at(-1), { layer: 'sha256:x', op: 'read', path: '/h', errno: ERRNO.EIO, err: /registry down/ }, 'detail logged, errno returned');
  t.equal((await call<[number]>((cb) => ops.read('/h', fd ?? 0, buf, 16, 0, cb)))[0], 16, 'next read works');
  t.equal((await call<[number]>((cb) => ops.read('/h', 999, buf, 16, 0, cb)))[0], ERRNO.EBADF);
  t.equal((await call<[number]>((cb) => ops.release('/h', fd ?? 0, cb)))[0], 0);
  t.equal(layer.openHandles, 0);
  layer.close();
  t.equal((await call<[number]>((cb) => ops.getattr('/f', cb)))[0], ERRNO.EIO, 'closed ops refuse');
});

t.test('readlink, xattrs, statfs, access, writes', async (t) => {
  const { ops } = setup();
  t.same(await call((cb) => ops.readlink('/d/up', cb)), [0, '../../../etc/shadow'], 'symlink text, never followed');
  t.equal((await call<[number]>((cb) => ops.readlink('/f', cb)))[0], ERRNO.EINVAL);
  const [e1, v1] = await call<[number, Buffer?]>((cb) => ops.getxattr('/d', 'trusted.overlay.opaque', 0, cb));
  t.same([e1, v1?.toString()], [0, 'y']);
  t.equal((await call<[number]>((cb) => ops.getxattr('/f', 'trusted.overlay.opaque', 0, cb)))[0], ERRNO.ENODATA);
  const [, v2] = await call<[number, Buffer?]>((cb) => ops.getxattr('/f', 'security.capability', 0, cb));
  t.same(v2, Buffer.from([1, 2]));
  t.same((await call<[number, string[]?]>((cb) => ops.listxattr('/f', cb)))[1], ['user.k', 'security.capability']);
  t.same((await call<[number, string[]?]>((cb) => ops.listxattr('/d', cb)))[1], ['trusted.overlay.opaque']);
  t.same((await call<[number, string[]?]>((cb) => ops.listxattr('/null', cb)))[1], []);
  const [se, st] = await call<[number, { blocks: number; files: number; bfree: number }?]>((cb) => ops.statfs('/', cb));
  t.same([se, st?.blocks, st?.files, st?.bfree], [0, 256, 7, 0]);
  t.equal((await call<[number]>((cb) => ops.access('/f', 2, cb)))[0], ERRNO.EROFS);
  t.equal((await call<[number]>((cb) => ops.access('/f', 4, cb)))[0], 0);
  t.equal((await call<[number]>((cb) => ops.access('/x', 4, cb)))[0], ERRNO.ENOENT);
  for (const op of ['unlink', 'mkdir', 'rmdir', 'rename', 'chmod', 'chown', 'setxattr', 'removexattr', 'symlink', 'link', 'mknod', 'truncate', 'utimens', 'create', 'write']) {
    const fn = ops[op] as unknown as (...args: unknown[]) => void;
    const [res] = await new Promise<[number]>((resolve) => fn('/f', 'a', 'b', 'c', 'd', (r: number) => resolve([r])));
    t.equal(res, ERRNO.EROFS, op);
  }
});

t.test('an id translation maps owners in getattr and readdir, and nothing else', async (t) => {
  const owned = new FakeIndex([
    { type: 'dir', path: '', mode: 0o755, opaque: false, uid: 0, gid: 0 },
    { type: 'file', path: 'mine', size: 16, dataOffset: 1000, uid: 1000, gid: 100, mode: 0o4755 },
  ]);
  const ids = { uid: (u: number) => u + 100000, gid: (g: number) => g + 200000 };
  const ops = new LayerOps({ view: owned, reader: fakeReader(), layer: 'sha256:x', ids }).ops();
  const [err, st] = await call<[number, FuseStat?]>((cb) => ops.getattr('/mine', cb));
  t.equal(err, 0);
  t.equal(st?.uid, 101000);
  t.equal(st?.gid, 200100);
  t.equal(st!.mode & 0o7777, 0o4755, 'mode unchanged, setuid kept');
  const [, names, stats] = await call<[number, string[]?, FuseStat[]?]>((cb) => ops.readdir('/', cb));
  t.same(names, ['.', '..', 'mine']);
  t.same(stats?.map((s) => [s.uid, s.gid]), [
    [100000, 200000],
    [100000, 200000],
    [101000, 200100],
  ]);
  const plain = new LayerOps({ view: owned, reader: fakeReader(), layer: 'sha256:x' }).ops();
  const [, st2] = await call<[number, FuseStat?]>((cb) => plain.getattr('/mine', cb));
  t.equal(st2?.uid, 1000, 'without a translation the stored owner');
  t.equal(owned.lookup('mine')?.uid, 1000, 'the shared index is not modified');
});

t.test('libfuse ops tell the read activity of each request: reads from start to reply, metadata as it comes', async (t) => {
  const reader = fakeReader();
  const events: string[] = [];
  const activity = { begin: () => void events.push('begin'), end: () => void events.push('end'), touch: () => void events.push('touch') };
  const ops = new LayerOps({ view, reader, layer: 'sha256:x', activity }).ops();
  await call<[number]>((cb) => ops.getattr('/f', cb));
  const [, fd] = await call<[number, number?]>((cb) => ops.open('/f', 0, cb));
  t.same(events, ['touch', 'touch'], 'getattr and open noted');
  const buf = Buffer.alloc(16);
  let ended = false;
  const read = call<[number]>((cb) => ops.read('/f', fd ?? 0, buf, 16, 0, (n) => {
    ended = events.at(-1) === 'end';
    cb(n);
  }));
  t.equal(events.at(-1), 'begin', 'a read is in flight until its reply');
  t.same(await read, [16]);
  t.ok(ended, 'and ends before the reply goes to libfuse');
});
