import { Readable } from 'node:stream';
import { compressSync, uncompressSync } from 'lz4-napi';
import t from 'tap';
import type tap from 'tap';
import { ClipError } from '../../src/errors/index.js';
import { buildIndex, decodeIndex, encodeIndex, type ClipIndex, type ClipIndexReader } from '../../src/clip/index.js';
import { EntryTable } from '../../src/clip/entry-table.js';
import type { TarEntry } from '../../src/clip/tar-parser.js';
import { sealIndex } from './index-fixtures.js';
import { expectClipError, member, pax, tar } from './tar-fixtures.js';

const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x20, 0x00, 0xff, 0x0a]);
const layer = tar(
  member({ name: 'bin/', type: '5', mode: 0o755, mtime: 1600000000 }),
  pax([['SCHILY.xattr.security.capability', cap], ['SCHILY.xattr.user.note', 'hi'], ['mtime', '1700000000.5']]),
  member({ name: 'bin/ping', mode: 0o4711, uid: 0, gid: 0 }, 'ping'),
  member({ name: 'bin/sh', type: '2', linkname: 'busybox' }),
  member({ name: 'bin/busybox', mode: 0o755, uid: 1001, gid: 1002, uname: 'u', gname: 'g' }, 'bb'),
  member({ name: 'bin/hard', type: '1', linkname: 'bin/busybox' }),
  member({ name: 'dev/sda', type: '4', devMajor: 8, devMinor: 0 }),
  member({ name: 'dev/p', type: '6' }),
  member({ name: 'opq/.wh..wh..opq' }),
  member({ name: 'opq/.wh.gone' }),
  member({ name: 'ünï/çødé', mode: 0o2750 }, 'x'),
);

async function built(): Promise<ClipIndex> {
  return buildIndex(Readable.from([layer]));
}

t.test('encode → decode round trip keeps every field', async (t) => {
  const idx = await built();
  const r = decodeIndex(encodeIndex(idx));
  t.same(r.meta, idx.meta);
  t.equal(r.entryCount, idx.entries.length);
  idx.entries.forEach((b, i) => {
    const e = r.lookup(b.path)!;
    t.equal(e.index, i, `lookup ${b.path}`);
    t.equal(e.type, b.type);
    t.equal(e.mode, b.mode);
    t.same([e.uid, e.gid, e.uname, e.gname, e.mtimeSec, e.mtimeNsec], [b.uid, b.gid, b.uname, b.gname, b.mtimeSec, b.mtimeNsec]);
    if (e.type === 'file' || e.type === 'hardlink') t.same([e.size, e.dataOffset], [b.size, b.dataOffset]);
    if (e.type === 'symlink' || e.type === 'hardlink') t.equal(e.target, b.link);
    if (e.type === 'char' || e.type === 'block') t.same([e.devMajor, e.devMinor], [b.devMajor, b.devMinor]);
    if (e.type === 'dir') t.equal(e.opaque, b.opaque);
    t.same(r.xattrs(e).map((x) => [x.name, x.value.toString('hex')]), b.xattrs.map((x) => [x.name, x.value.toString('hex')]));
  });
  const ping = r.lookup('/bin/ping');
  t.equal(ping?.type, 'file');
  t.equal(ping?.mtimeNsec, 500000000);
  t.ok(r.xattrs(ping!)[0]!.value.equals(cap), 'binary xattr survives');
  t.equal(r.lookup('')?.type, 'dir');
  t.equal(r.lookup('/')?.inode, 1);
  t.equal(r.lookup('bin/')?.path, 'bin');
  t.equal(r.lookup('bin/nope'), undefined);
  t.equal(r.lookup('bi'), undefined);
  t.equal(r.lookup('bin/ping/x'), undefined);
  t.same(r.readdir('')!.map((e) => e.name), ['bin', 'dev', 'opq', 'ünï']);
  t.same(r.readdir('bin')!.map((e) => e.name), ['busybox', 'hard', 'ping', 'sh']);
  t.same(r.readdir('opq')!.map((e) => [e.name, e.type]), [['gone', 'whiteout']]);
  t.equal(r.readdir('bin/ping'), undefined);
  t.equal((r.lookup('opq') as { opaque?: boolean }).opaque, true);
  t.equal(r.lookup('ünï/çødé')?.mode, 0o2750);
  const hard = r.lookup('bin/hard');
  t.equal(hard?.type, 'hardlink');
  if (hard?.type === 'hardlink') t.equal(hard.linkedType, 'file');
  t.equal(r.inodeOf('bin/hard'), r.inodeOf('bin/busybox'));
  t.not(r.inodeOf('bin/ping'), r.inodeOf('bin/busybox'));
  t.equal(r.linkCount('bin/hard'), 2);
  t.equal(r.linkCount('bin'), 2);
  t.equal(r.linkCount(''), 2 + 4);
});

/** A synthetic index of n files in n/100 directories. */
function bigIndex(n: number): ClipIndex {
  const table = new EntryTable();
  const base: Omit<TarEntry, 'name' | 'typeflag' | 'size' | 'dataOffset'> = {
    linkname: '', mode: 0o644, uid: 0, gid: 0, uname: 'root', gname: 'root', mtimeSec: 1, mtimeNsec: 0, devMajor: 0, devMinor: 0,
    xattrs: [], headerOffset: 0,
  };
  for (let i = 0; i < n; i++) {
    table.add({ ...base, name: `usr/share/d${i % 1000}/file-${i}.txt`, typeflag: '0', size: 100, dataOffset: i * 1024 + 512 });
  }
  const entries = table.finish();
  return { meta: { diffId: 'sha256:x', compressedDigest: 'sha256:y', compression: 'gzip', uncompressedSize: n * 1024 + 1024, entryCount: entries.length }, entries };
}

// How fast decode and lookups are is measured in `make bench` (integration/bench/index-bench.ts).
t.test('100k entries: decode, then 10k lookups all find their entry', async (t) => {
  const idx = bigIndex(100_000);
  const r = decodeIndex(encodeIndex(idx));
  t.equal(r.entryCount, idx.entries.length);
  let found = 0;
  for (let i = 0; i < 10_000; i++) {
    const path = `usr/share/d${(i * 7) % 1000}/file-${(i * 7) % 100_000}.txt`;
    const at = r.indexOf(path);
    if (at > 0 && r.entryAt(at).path === path) found++;
  }
  t.equal(found, 10_000);
  t.equal(r.readdir('usr/share/d5')!.length, 100);
});

/** Touch everything a reader can reach; must not throw anything but RangeError from entryAt misuse. */
function exercise(r: ClipIndexReader): void {
  for (let i = 0; i < r.entryCount; i++) {
    const e = r.entryAt(i);
    r.xattrs(e);
    r.lookup(e.path);
    if (e.type === 'dir') r.readdir(e.path);
  }
}

function fuzz(t: Pick<typeof tap, 'fail'>, base: Buffer, mutate: (b: Buffer, rand: (n: number) => number) => Buffer, iterations: number, seed0: number, wrapPayload: boolean): { rejected: number; accepted: number } {
  let seed = seed0;
  const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  let rejected = 0;
  let accepted = 0;
  for (let i = 0; i < iterations; i++) {
    const mutated = mutate(Buffer.from(base), rand);
    try {
      const r = decodeIndex(wrapPayload ? sealIndex(mutated) : mutated);
      exercise(r);
      accepted++;
    } catch (err) {
      if (!(err instanceof ClipError) || err.kind !== 'data_corrupt') t.fail(`unexpected error: ${String(err)}`);
      rejected++;
    }
  }
  return { rejected, accepted };
}

t.test('random byte flips and truncations of an encoded index give data_corrupt', async (t) => {
  const enc = encodeIndex(await built());
  const flips = fuzz(t, enc, (b, rand) => {
    for (let k = 0; k <= rand(3); k++) {
      const at = rand(b.length);
      b[at] = (b[at] ?? 0) ^ (1 + rand(255));
    }
    return b;
  }, 3000, 1, false);
  const cuts = fuzz(t, enc, (b, rand) => b.subarray(0, rand(b.length)), 1000, 2, false);
  t.equal(flips.accepted + cuts.accepted, 0, 'checksums catch every mutation');
  t.ok(flips.rejected > 0 && cuts.rejected > 0);
});

t.test('structurally hostile payloads (valid checksums) are rejected or stay in bounds', async (t) => {
  const payload = uncompressSync(encodeIndex(await built()).subarray(32));
  const res = fuzz(t, payload, (b, rand) => {
    for (let k = 0; k <= rand(4); k++) {
      const at = rand(b.length);
      if (rand(2) === 0) b[at] = rand(256);
      else b.writeUInt32LE(rand(2) === 0 ? 0xffffffff : rand(b.length * 2), Math.min(at, b.length - 4));
    }
    return rand(10) === 0 ? b.subarray(0, rand(b.length)) : b;
  }, 3000, 3, true);
  t.comment(`rejected ${res.rejected}, accepted ${res.accepted}`);
  t.ok(res.rejected > 1000, `rejected ${res.rejected}, accepted ${res.accepted}`);
});

t.test('header checks', async (t) => {
  const enc = encodeIndex(await built());
  const wrongMagic = Buffer.from(enc);
  wrongMagic[0] = 0x58;
  expectClipError(t, () => decodeIndex(wrongMagic), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
  const wrongVersion = Buffer.from(enc);
  wrongVersion.writeUInt16LE(99, 8);
  expectClipError(t, () => decodeIndex(wrongVersion), 'data_corrupt', 'CLIP_INDEX_VERSION');
  const huge = Buffer.from(enc);
  huge.writeUInt32LE(0xfffffff0, 12);
  expectClipError(t, () => decodeIndex(huge), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
  expectClipError(t, () => decodeIndex(Buffer.alloc(0)), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
  const payload = uncompressSync(enc.subarray(32));
  t.equal(decodeIndex(sealIndex(Buffer.from(payload))).entryCount, decodeIndex(enc).entryCount, 'an unmodified payload re-wrapped decodes');
  // Move the first file's data past the end of the layer: the bounds check must catch it.
  const r = decodeIndex(enc);
  const ping = r.lookup('bin/ping')!;
  const entriesOff = [...Array(payload.readUInt32LE(0)).keys()].map((i) => [payload.readUInt32LE(4 + i * 12), payload.readUInt32LE(8 + i * 12)]).find(([id]) => id === 3)![1]!;
  const hostile = Buffer.from(payload);
  hostile.writeUInt32LE(r.meta.uncompressedSize, entriesOff + ping.index * 104 + 64);
  expectClipError(t, () => decodeIndex(sealIndex(hostile)), 'data_corrupt', 'CLIP_INDEX_CORRUPT');
});

t.test('unknown sections are ignored (room for gzip checkpoints)', async (t) => {
  const payload = uncompressSync(encodeIndex(await built()).subarray(32));
  const count = payload.readUInt32LE(0);
  const extra = Buffer.from('zran checkpoints would live here');
  const table = Buffer.alloc(4 + (count + 1) * 12);
  table.writeUInt32LE(count + 1, 0);
  for (let i = 0; i < count; i++) {
    table.writeUInt32LE(payload.readUInt32LE(4 + i * 12), 4 + i * 12);
    table.writeUInt32LE(payload.readUInt32LE(8 + i * 12) + 12, 8 + i * 12);
    table.writeUInt32LE(payload.readUInt32LE(12 + i * 12), 12 + i * 12);
  }
  const bodies = payload.subarray(4 + count * 12);
  table.writeUInt32LE(99, 4 + count * 12);
  table.writeUInt32LE(table.length + bodies.length, 8 + count * 12);
  table.writeUInt32LE(extra.length, 12 + count * 12);
  const r = decodeIndex(sealIndex(Buffer.concat([table, bodies, extra])));
  t.equal(r.lookup('bin/ping')?.type, 'file');
});

t.test('readers of different layers share one lookup buffer and still answer each for its own layer', async (t) => {
  const a = decodeIndex(encodeIndex(await built()));
  const other = tar(member({ name: 'bin/', type: '5', mode: 0o755 }), member({ name: 'bin/only-b', mode: 0o644 }, 'b'));
  const b = decodeIndex(encodeIndex(await buildIndex(Readable.from([other]))));
  // Alternate lookups with paths of different lengths: a byte left over from the other reader's
  // query must never match.
  for (let round = 0; round < 3; round++) {
    t.equal(a.lookup('bin/busybox')?.name, 'busybox');
    t.equal(b.lookup('bin/busybox'), undefined);
    t.equal(b.lookup('bin/only-b')?.name, 'only-b');
    t.equal(a.lookup('bin/only-b'), undefined);
    t.equal(a.lookup('bin/sh')?.type, 'symlink');
    t.equal(b.lookup('bin/o'), undefined);
  }
});
