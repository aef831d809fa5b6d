/**
 * The kernel FUSE driver without a kernel: the wire codec, the layer dispatcher over a fake index
 * and reader, and the session's INIT, no-reply requests and pause (hand-over) over a fake addon.
 */
import t from 'tap';
import { findClipError } from '../../src/errors/index.js';
import { ERRNO, LayerOps } from '../../src/fuse/index.js';
import { LayerDispatcher } from '../../src/fuse/kernel/layer-dispatcher.js';
import { KernelSession } from '../../src/fuse/kernel/session.js';
import { requestPages } from '../../src/fuse/kernel/kernel-mount.js';
import { POOLED_REPLY_BYTES, pooledFree, recycle, takeReplyBuffer } from '../../src/fuse/kernel/reply-buffers.js';
import {
  ENTRY_OUT_BYTES, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, INIT, MAX_WRITE_BYTES, OP, OUT_HEADER_BYTES, decodeInit, decodeRequest, direntBytes, negotiate, writeDirent, writeHeader,
  type Request,
} from '../../src/fuse/kernel/wire.js';
import type { LayerReader } from '../../src/storage/layer-reader.js';
import { FakeIndex } from './fake-index.js';

const LAYER = Buffer.alloc(8192);
for (let i = 0; i < LAYER.length; i++) LAYER[i] = (i * 7) & 0xff;

function reader(): LayerReader & { gate?: Promise<void> } {
  const r: LayerReader & { gate?: Promise<void> } = {
    layer: { ref: 'x', digest: 'sha256:x', diffId: 'sha256:x', uncompressedSize: LAYER.length },
    async read(buf, bufOffset, length, offset) {
      if (r.gate) await r.gate;
      return LAYER.copy(buf, bufOffset, offset, offset + Math.min(length, LAYER.length - offset));
    },
    async check() {},
    async close() {},
  };
  return r;
}

// Row order is node order: root (1), f (2), d (3), d/a (4), d/b (5), d/link (6), x (7).
const view = new FakeIndex(
  [
    { type: 'file', path: 'f', size: 3000, dataOffset: 100, mode: 0o640, uid: 7 },
    { type: 'dir', path: 'd', opaque: false, childCount: 3, mode: 0o755 },
    { type: 'file', path: 'd/a', size: 1, dataOffset: 0 },
    { type: 'file', path: 'd/b', size: 0, dataOffset: 0 },
    { type: 'symlink', path: 'd/link', target: '../f' },
    { type: 'fifo', path: 'x' },
  ],
  { f: { 'user.k': 'value' } },
);

/** A request as the kernel writes it. */
function request(opcode: number, nodeid: number, body: Buffer = Buffer.alloc(0), unique = 77n): Buffer {
  const b = Buffer.alloc(40 + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  body.copy(b, 40);
  return b;
}
const name = (s: string): Buffer => Buffer.from(`${s}\0`);
const readIn = (offset: number, size: number): Buffer => {
  const b = Buffer.alloc(40);
  b.writeBigUInt64LE(BigInt(offset), 8);
  b.writeUInt32LE(size, 16);
  return b;
};
const u32pair = (a: number, b = 0): Buffer => {
  const x = Buffer.alloc(8);
  x.writeUInt32LE(a, 0);
  x.writeUInt32LE(b, 4);
  return x;
};

function dispatcher(): LayerDispatcher {
  return new LayerDispatcher(new LayerOps({ view, reader: reader(), layer: 'sha256:x' }), { ttlMs: 1500 });
}
async function ask(d: LayerDispatcher, raw: Buffer): Promise<{ len: number; error: number; unique: bigint; payload: Buffer }> {
  const out = await d.handle(decodeRequest(raw));
  if (!out) throw new Error('no reply');
  return { len: out.readUInt32LE(0), error: out.readInt32LE(4), unique: out.readBigUInt64LE(8), payload: out.subarray(OUT_HEADER_BYTES) };
}
const attrAt = (p: Buffer, at: number) => ({ ino: Number(p.readBigUInt64LE(at)), size: Number(p.readBigUInt64LE(at + 8)), mode: p.readUInt32LE(at + 60), uid: p.readUInt32LE(at + 68) });

t.test('request decoding refuses short and inconsistent buffers', async (t) => {
  const r = decodeRequest(request(OP.LOOKUP, 3, name('a'), 9n));
  t.same([r.opcode, r.nodeid, r.unique, r.body.toString()], [OP.LOOKUP, 3, 9n, 'a\0']);
  t.equal(findClipError(catchErr(() => decodeRequest(Buffer.alloc(20))))?.code, 'CLIP_FUSE_BAD_REQUEST');
  const lying = request(OP.GETATTR, 1);
  lying.writeUInt32LE(999, 0);
  t.equal(findClipError(catchErr(() => decodeRequest(lying)))?.code, 'CLIP_FUSE_BAD_REQUEST');
});

t.test('INIT: the lower minor, only flags both sides have, a read-only max_write', async (t) => {
  const body = Buffer.alloc(64);
  body.writeUInt32LE(7, 0);
  body.writeUInt32LE(45, 4);
  body.writeUInt32LE(4 << 20, 8);
  body.writeUInt32LE(0x73fffffb, 12); // what a 6.18 kernel offers
  const n = negotiate(decodeInit(body), { maxReadahead: 1 << 20, maxPages: 256 });
  t.same([n.major, n.minor, n.maxReadahead, n.maxWrite, n.maxPages], [7, 31, 1 << 20, MAX_WRITE_BYTES, 256]);
  t.ok(n.flags & INIT.ASYNC_READ, 'async reads');
  t.ok(n.flags & INIT.MAX_PAGES, 'max_pages');
  t.equal(n.flags & (1 << 16), 0, 'no writeback cache');
  t.equal(n.flags & (1 << 13), 0, 'no readdirplus');
  const old = Buffer.alloc(16);
  old.writeUInt32LE(7, 0);
  old.writeUInt32LE(26, 4);
  old.writeUInt32LE(131072, 8);
  old.writeUInt32LE(INIT.ASYNC_READ, 12);
  const o = negotiate(decodeInit(old), { maxReadahead: 1 << 20, maxPages: 256 });
  t.same([o.minor, o.flags, o.maxReadahead, o.maxPages], [26, INIT.ASYNC_READ, 131072, 32], 'an older kernel: its minor, no max_pages');
});

t.test('dirents are padded to 8 bytes and carry the next cookie', async (t) => {
  const b = Buffer.alloc(64, 0xee);
  const n = writeDirent(b, 0, 42, 3, 4, 'abc');
  t.equal(n, direntBytes('abc'));
  t.equal(n, 32);
  t.same([Number(b.readBigUInt64LE(0)), Number(b.readBigUInt64LE(8)), b.readUInt32LE(16), b.readUInt32LE(20), b.toString('utf8', 24, 27)], [42, 3, 3, 4, 'abc']);
  t.same([...b.subarray(27, 32)], [0, 0, 0, 0, 0], 'padding zeroed');
});

t.test('LOOKUP: node ids are index rows + 1; absent names are cached negative entries', async (t) => {
  const d = dispatcher();
  const hit = await ask(d, request(OP.LOOKUP, 3, name('b')));
  t.same([hit.error, hit.len, hit.unique], [0, OUT_HEADER_BYTES + ENTRY_OUT_BYTES, 77n]);
  t.equal(Number(hit.payload.readBigUInt64LE(0)), 5, 'd/b is row 4 → node 5');
  t.equal(Number(hit.payload.readBigUInt64LE(16)), 1, 'entry_valid 1 s');
  t.equal(hit.payload.readUInt32LE(32), 500_000_000, 'and 500 ms in ns');
  t.same(attrAt(hit.payload, 40), { ino: 5, size: 0, mode: 0o100644, uid: 0 });
  const miss = await ask(d, request(OP.LOOKUP, 1, name('nope')));
  t.same([miss.error, Number(miss.payload.readBigUInt64LE(0))], [0, 0], 'negative entry');
  t.equal((await ask(d, request(OP.LOOKUP, 2, name('x')))).error, ERRNO.ENOTDIR, 'lookup under a file');
  t.equal((await ask(d, request(OP.LOOKUP, 1, name('..')))).error, ERRNO.EINVAL);
  t.equal((await ask(d, request(OP.GETATTR, 99, Buffer.alloc(16)))).error, ERRNO.ESTALE, 'unknown node');
  t.equal((await ask(d, request(OP.GETATTR, 0, Buffer.alloc(16)))).error, ERRNO.ESTALE, 'node 0');
});

t.test('a second dispatcher over the same index answers the same node ids (hand-over)', async (t) => {
  const a = dispatcher();
  const b = dispatcher();
  for (const node of [1, 2, 3, 4, 6, 7]) {
    const x = await ask(a, request(OP.GETATTR, node, Buffer.alloc(16)));
    const y = await ask(b, request(OP.GETATTR, node, Buffer.alloc(16)));
    t.same(y.payload, x.payload, `node ${node}`);
  }
  const r = await ask(b, request(OP.READ, 2, readIn(10, 100)));
  t.same(r.payload, LAYER.subarray(110, 210), 'a read on a handle another process opened');
});

t.test('GETATTR, READLINK, OPEN, READ', async (t) => {
  const d = dispatcher();
  const attr = await ask(d, request(OP.GETATTR, 2, Buffer.alloc(16)));
  t.same(attrAt(attr.payload, 16), { ino: 2, size: 3000, mode: 0o100640, uid: 7 });
  t.equal((await ask(d, request(OP.READLINK, 6))).payload.toString(), '../f');
  t.equal((await ask(d, request(OP.READLINK, 2))).error, ERRNO.EINVAL);
  const open = await ask(d, request(OP.OPEN, 2, u32pair(0)));
  t.same([Number(open.payload.readBigUInt64LE(0)), open.payload.readUInt32LE(8)], [2, FOPEN_KEEP_CACHE], 'fh is the node id, keep cache');
  t.equal((await ask(d, request(OP.OPEN, 2, u32pair(1)))).error, ERRNO.EROFS, 'O_WRONLY');
  t.equal((await ask(d, request(OP.OPEN, 2, u32pair(0o1000)))).error, ERRNO.EROFS, 'O_TRUNC');
  t.equal((await ask(d, request(OP.OPEN, 3, u32pair(0)))).error, ERRNO.EISDIR);
  const od = await ask(d, request(OP.OPENDIR, 3, u32pair(0)));
  t.equal(od.payload.readUInt32LE(8), FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR);
  t.equal((await ask(d, request(OP.OPENDIR, 2, u32pair(0)))).error, ERRNO.ENOTDIR);
  const read = await ask(d, request(OP.READ, 2, readIn(2900, 4096)));
  t.same([read.error, read.len], [0, OUT_HEADER_BYTES + 100], 'short at the end of the file');
  t.same(read.payload, LAYER.subarray(3000, 3100));
  t.equal((await ask(d, request(OP.READ, 2, readIn(3000, 10)))).len, OUT_HEADER_BYTES, 'EOF: empty');
  t.equal((await ask(d, request(OP.READ, 3, readIn(0, 10)))).error, ERRNO.EISDIR);
});

t.test('READDIR pages by cookie and lists . and ..', async (t) => {
  const d = dispatcher();
  const names: string[] = [];
  let offset = 0;
  for (let page = 0; page < 10; page++) {
    const r = await ask(d, request(OP.READDIR, 3, readIn(offset, 64))); // room for two short dirents
    if (r.payload.length === 0) break;
    for (let at = 0; at < r.payload.length;) {
      const len = r.payload.readUInt32LE(at + 16);
      names.push(`${r.payload.toString('utf8', at + 24, at + 24 + len)}:${Number(r.payload.readBigUInt64LE(at))}:${r.payload.readUInt32LE(at + 20)}`);
      offset = Number(r.payload.readBigUInt64LE(at + 8));
      at += direntBytes(r.payload.toString('utf8', at + 24, at + 24 + len));
    }
  }
  t.same(names, ['.:3:4', '..:1:4', 'a:4:8', 'b:5:8', 'link:6:10'], 'name:ino:d_type, across pages');
});

t.test('xattrs, statfs, access, writes, the unknown', async (t) => {
  const d = dispatcher();
  const getx = (size: number, n: string) => ask(d, request(OP.GETXATTR, 2, Buffer.concat([u32pair(size), name(n)])));
  const probe = await getx(0, 'user.k');
  t.equal(probe.payload.readUInt32LE(0), 5, 'size probe');
  t.equal((await getx(3, 'user.k')).error, ERRNO.ERANGE);
  t.equal((await getx(64, 'user.k')).payload.toString(), 'value');
  t.equal((await getx(64, 'user.none')).error, ERRNO.ENODATA);
  t.equal((await ask(d, request(OP.LISTXATTR, 2, u32pair(64)))).payload.toString('latin1'), 'user.k\0');
  t.equal((await ask(d, request(OP.LISTXATTR, 2, u32pair(0)))).payload.readUInt32LE(0), 7);
  const st = await ask(d, request(OP.STATFS, 1));
  t.same([Number(st.payload.readBigUInt64LE(0)), Number(st.payload.readBigUInt64LE(8)), st.payload.readUInt32LE(40)], [256, 0, 4096], 'blocks, none free, bsize');
  t.equal((await ask(d, request(OP.ACCESS, 2, u32pair(4)))).error, 0);
  t.equal((await ask(d, request(OP.ACCESS, 2, u32pair(2)))).error, ERRNO.EROFS);
  for (const op of [OP.SETATTR, OP.WRITE, OP.MKDIR, OP.UNLINK, OP.CREATE, OP.SETXATTR, OP.RENAME2]) t.equal((await ask(d, request(op, 1, Buffer.alloc(64)))).error, ERRNO.EROFS, `op ${op}`);
  t.equal((await ask(d, request(52 /* STATX */, 1, Buffer.alloc(64)))).error, ERRNO.ENOSYS);
  t.equal((await ask(d, request(OP.LOOKUP, 1, Buffer.from('no-nul')))).error, ERRNO.EINVAL, 'malformed body');
});

t.test('session: INIT, no-reply requests, requests in flight, pause', async (t) => {
  const written: Buffer[] = [];
  let onRequest: ((b: Buffer | null, errno: number) => void) | undefined;
  let stopped = 0;
  const native = {
    startReader: (_fd: number, _size: number, cb: (b: Buffer | null, errno: number) => void) => {
      onRequest = cb;
      return {} as never;
    },
    stopReader: () => void stopped++,
  };
  let release!: () => void;
  const r = reader();
  r.gate = new Promise((resolve) => (release = resolve));
  const d = new LayerDispatcher(new LayerOps({ view, reader: r, layer: 'sha256:x' }), { ttlMs: 1000 });
  const handled: Request[] = [];
  const activity = { begun: 0, ended: 0, touched: 0, begin() { this.begun++; }, end() { this.ended++; }, touch() { this.touched++; } };
  const s = new KernelSession({ fd: -1, native, write: (_fd, b) => void written.push(Buffer.from(b)), handler: (req) => (handled.push(req), d.handle(req)), activity });
  s.start();
  onRequest!(request(OP.GETATTR, 1, Buffer.alloc(16), 1n), 0);
  t.equal(written[0]?.readInt32LE(4), ERRNO.EIO, 'before INIT: EIO');
  const init = Buffer.alloc(64);
  init.writeUInt32LE(7, 0);
  init.writeUInt32LE(38, 4);
  init.writeUInt32LE(1 << 20, 8);
  init.writeUInt32LE(INIT.ASYNC_READ, 12);
  const initialized = s.initialized();
  onRequest!(request(OP.INIT, 0, init, 2n), 0);
  await initialized;
  t.same([written[1]?.readUInt32LE(0), written[1]?.readUInt32LE(16), written[1]?.readUInt32LE(20)], [80, 7, 31], 'INIT answered 7.31');
  onRequest!(request(OP.FORGET, 2, Buffer.alloc(8), 3n), 0);
  onRequest!(request(OP.INTERRUPT, 0, Buffer.alloc(8), 4n), 0);
  t.equal(written.length, 2, 'FORGET and INTERRUPT take no reply');
  onRequest!(request(OP.READ, 2, readIn(0, 10), 5n), 0);
  onRequest!(request(OP.READ, 2, readIn(10, 10), 6n), 0);
  t.equal(s.inflight, 2, 'two reads in flight at once');
  t.same([activity.begun, activity.ended], [2, 0], 'the read activity hears of both requests handed to the handler (not INIT, FORGET, INTERRUPT or the refused one)');
  let paused = false;
  const p = s.pause().then(() => (paused = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(stopped, 1, 'reading stopped');
  t.equal(paused, false, 'pause waits for the replies in flight');
  release();
  await p;
  t.same(written.slice(2).map((b) => b.readBigUInt64LE(8)).sort(), [5n, 6n], 'both answered before pause resolved');
  t.same([activity.begun, activity.ended], [2, 2], 'and of both replies');
  t.same(s.negotiated?.minor, 31, 'the parameters to hand over');
  t.equal(handled.filter((h) => h.opcode === OP.READ).length, 2);
});

t.test('READ through a sink: spliced from the disk file when the reader has one, else a buffer', async (t) => {
  const served: number[] = [];
  const r = reader();
  let onDisk = true;
  r.diskRange = (offset, length) => (onDisk && offset + length <= LAYER.length ? { fd: 42, position: offset + 1000, served: (n) => void served.push(n) } : undefined);
  const d = new LayerDispatcher(new LayerOps({ view, reader: r, layer: 'sha256:x' }), { ttlMs: 1500 });
  const spliced: Array<[bigint, number, number, number]> = [];
  let accept = true;
  const sink = { spliceRead: (unique: bigint, fd: number, position: number, length: number) => (spliced.push([unique, fd, position, length]), accept) };
  // f: 3000 bytes at layer offset 100; a read of 4096 at 2900 returns its last 100 bytes.
  t.equal(await d.handle(decodeRequest(request(OP.READ, 2, readIn(2900, 4096), 31n)), sink), undefined, 'the reply was written by the sink');
  t.same(spliced, [[31n, 42, 100 + 2900 + 1000, 100]], 'the file range of the data, clamped to the file');
  t.same(served, [100], 'accounted once delivered');
  accept = false;
  const fallback = await d.handle(decodeRequest(request(OP.READ, 2, readIn(0, 10), 32n)), sink);
  t.same(fallback?.subarray(OUT_HEADER_BYTES), LAYER.subarray(100, 110), 'refused (not cached): read into a buffer instead');
  t.same(served, [100], 'a refused splice is not accounted');
  onDisk = false;
  const before = spliced.length;
  t.same((await d.handle(decodeRequest(request(OP.READ, 2, readIn(0, 10), 33n)), sink))?.subarray(OUT_HEADER_BYTES), LAYER.subarray(100, 110));
  t.equal(spliced.length, before, 'no file range: the sink is not asked');
  t.same((await d.handle(decodeRequest(request(OP.READ, 2, readIn(0, 10), 34n))))?.subarray(OUT_HEADER_BYTES), LAYER.subarray(100, 110), 'no sink: a buffer');
  t.equal((await ask(d, request(OP.READ, 2, readIn(3000, 10)))).len, OUT_HEADER_BYTES, 'EOF stays an empty reply');
});

t.test('READ serves what readNow has at once and reads only the rest', async (t) => {
  const r = reader();
  const asked: Array<[number, number]> = [];
  r.readNow = (buf, bufOffset, length, offset) => LAYER.copy(buf, bufOffset, offset, offset + Math.min(length, 30));
  const read = r.read.bind(r);
  r.read = (buf, bufOffset, length, offset) => (asked.push([offset, length]), read(buf, bufOffset, length, offset));
  const d = new LayerDispatcher(new LayerOps({ view, reader: r, layer: 'sha256:x' }), { ttlMs: 1500 });
  t.same((await ask(d, request(OP.READ, 2, readIn(0, 100)))).payload, LAYER.subarray(100, 200));
  t.same(asked, [[130, 70]], 'the async read starts where readNow stopped');
});

t.test('the session splices through the addon when it can, with a header of the full length', async (t) => {
  let onRequest: ((b: Buffer | null, errno: number) => void) | undefined;
  const calls: Array<{ fuseFd: number; len: number; error: number; unique: bigint; fd: number; position: number; length: number }> = [];
  const native = {
    startReader: (_fd: number, _size: number, cb: (b: Buffer | null, errno: number) => void) => ((onRequest = cb), {} as never),
    stopReader: () => undefined,
    spliceReply: (fuseFd: number, h: Buffer, fd: number, position: number, length: number) => {
      calls.push({ fuseFd, len: h.readUInt32LE(0), error: h.readInt32LE(4), unique: h.readBigUInt64LE(8), fd, position, length });
      return true;
    },
  };
  const written: Buffer[] = [];
  const s = new KernelSession({
    fd: 9, native, write: (_fd, b) => void written.push(Buffer.from(b)),
    handler: async (req, sink) => (sink?.spliceRead(req.unique, 5, 4096, 1000) ? undefined : Buffer.alloc(OUT_HEADER_BYTES)),
  });
  s.start();
  const init = Buffer.alloc(64);
  init.writeUInt32LE(7, 0);
  init.writeUInt32LE(38, 4);
  onRequest!(request(OP.INIT, 0, init, 1n), 0);
  await s.initialized();
  onRequest!(request(OP.READ, 2, readIn(0, 1000), 8n), 0);
  await s.pause();
  t.same(calls, [{ fuseFd: 9, len: OUT_HEADER_BYTES + 1000, error: 0, unique: 8n, fd: 5, position: 4096, length: 1000 }]);
  t.equal(written.length, 1, 'only INIT was written as a buffer');
  const plain = new KernelSession({ fd: 9, native: { startReader: native.startReader, stopReader: native.stopReader }, handler: async (_req, sink) => (t.equal(sink, undefined, 'no splicing addon: no sink'), undefined) });
  plain.start();
  onRequest!(request(OP.INIT, 0, init, 1n), 0);
  await plain.initialized().catch(() => undefined);
  onRequest!(request(OP.READ, 2, readIn(0, 10), 9n), 0);
  await plain.pause();
});

t.test('max_pages: the kernel ceiling, lowered to what one spliced reply carries', async (t) => {
  t.equal(requestPages({}), 256, 'no splicing: 1 MiB requests');
  t.equal(requestPages({ spliceCapacity: () => 0 }), 256, 'splicing unavailable');
  t.equal(requestPages({ spliceCapacity: () => (1 << 20) - 8192 }), 254, 'a 1 MiB pipe: 1016 KiB');
  t.equal(requestPages({ spliceCapacity: () => (2 << 20) - 8192 }), 256, 'a 2 MiB pipe: the ceiling');
  t.equal(requestPages({ spliceCapacity: () => 65536 }), 256, 'a pipe too small to matter: not worth shrinking requests for');
});

t.test('READ reply buffers are reused once written, two kept', async (t) => {
  const a = takeReplyBuffer(OUT_HEADER_BYTES + 4096);
  t.equal(a.length, OUT_HEADER_BYTES + 4096);
  const held = [takeReplyBuffer(100), takeReplyBuffer(100), takeReplyBuffer(100), takeReplyBuffer(100), takeReplyBuffer(100)];
  recycle(a.subarray(0, 20));
  t.equal(takeReplyBuffer(10).buffer, a.buffer, 'a recycled buffer (even a slice of it) serves the next reply');
  for (const h of held) recycle(h);
  recycle(held[0] as Buffer);
  t.equal(pooledFree(), 2, 'at most two kept, each once');
  recycle(Buffer.alloc(100));
  t.equal(pooledFree(), 2, 'foreign buffers are not pooled');
  t.equal(takeReplyBuffer(POOLED_REPLY_BYTES + 1).length, POOLED_REPLY_BYTES + 1, 'larger than the pool holds: a fresh buffer');
  const w = Buffer.alloc(OUT_HEADER_BYTES + 8);
  writeHeader(w, 12n);
  t.same([w.readUInt32LE(0), w.readInt32LE(4), w.readBigUInt64LE(8)], [OUT_HEADER_BYTES + 8, 0, 12n], 'header of the whole buffer');
});

function catchErr(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}
