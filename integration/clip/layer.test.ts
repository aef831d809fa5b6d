/**
 * Builds real layers with GNU tar (every entry type, a busybox rootfs, optionally a debootstrap
 * minbase rootfs), indexes them plain, gzip and zstd, and checks the index against `tar -x`.
 * Needs root (devices, ownership, security.* xattrs).
 */
import { execFileSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, rmSync, symlinkSync, linkSync, writeFileSync, chmodSync, chownSync, utimesSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { buildIndex, decodeIndex, encodeIndex, type ClipIndexReader } from '../../snapshotter/src/clip/index.js';
import { extract, sha256sum, tarListing, verifyAgainstExtraction } from './verify-layer.js';
import { debianMirror } from '../images/debian-rootfs.js';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26 });

/** A tree with every entry type the index must describe. */
function craftTree(root: string): void {
  const d = (p: string): void => void mkdirSync(join(root, p), { recursive: true });
  const f = (p: string, content: string | Buffer, mode = 0o644): void => {
    writeFileSync(join(root, p), content);
    chmodSync(join(root, p), mode);
  };
  d('a/b/c');
  d('empty');
  f('a/b/c/deep.txt', 'deep file\n');
  f('a/big.bin', Buffer.alloc(3 * 1024 * 1024 + 7, 0xab));
  f('a/empty-file', '');
  f('setuid', '#!/bin/true\n', 0o4755);
  f('setgid', 'g', 0o2711);
  d('sticky');
  chmodSync(join(root, 'sticky'), 0o1777);
  symlinkSync('a/b/c/deep.txt', join(root, 'link'));
  symlinkSync('/absolute/target', join(root, 'abslink'));
  linkSync(join(root, 'a/b/c/deep.txt'), join(root, 'hard'));
  f('cap', 'capable');
  execFileSync('setfattr', ['-n', 'security.capability', '-v', '0sAQAAAgAgAAAAAAAAAAAAAAAAAAA=', join(root, 'cap')]);
  execFileSync('setfattr', ['-n', 'user.note', '-v', '0x00ff0a3d20', join(root, 'cap')]);
  execFileSync('mknod', [join(root, 'null'), 'c', '1', '3']);
  execFileSync('mknod', [join(root, 'loop9'), 'b', '7', '9']);
  execFileSync('mkfifo', [join(root, 'fifo')]);
  d('wh');
  f('wh/.wh.gone', '');
  d('opq');
  f('opq/.wh..wh..opq', '');
  f('opq/kept', 'k');
  const longDir = 'l'.repeat(120) + '/' + 'm'.repeat(150);
  d(longDir);
  f(`${longDir}/${'n'.repeat(200)}`, 'long path');
  f('ünïcødé-日本語.txt', 'utf8 name');
  f('owned', 'uid/gid');
  chownSync(join(root, 'owned'), 1234, 5678);
  chownSync(join(root, 'a/b'), 4242, 4343);
  utimesSync(join(root, 'owned'), 1234567890, 1234567890);
}

/** Tar a directory as a container layer would be tarred (pax, xattrs, sorted). */
function tarDir(dir: string, out: string, format = 'pax'): void {
  const xattrs = format === 'pax' ? ['--xattrs', '--xattrs-include=*'] : []; // GNU format cannot carry xattrs
  execFileSync('tar', [...xattrs, `--format=${format}`, '--sort=name', '-cf', out, '-C', dir, '.']);
}

async function indexOf(path: string): Promise<ClipIndexReader> {
  return decodeIndex(encodeIndex(await buildIndex(createReadStream(path))));
}

async function checkLayer(t: Tap, work: string, name: string, tarPath: string, xattrs = true): Promise<ClipIndexReader> {
  execFileSync('gzip', ['-k', '-f', tarPath]);
  execFileSync('zstd', ['-q', '-f', tarPath, '-o', `${tarPath}.zst`]);
  const diffId = sha256sum(tarPath);
  const plain = await indexOf(tarPath);
  t.equal(plain.meta.diffId, diffId, `${name}: diffID equals sha256sum`);
  t.equal(plain.meta.compression, 'none');
  for (const [suffix, compression] of [['.gz', 'gzip'], ['.zst', 'zstd']] as const) {
    const r = await indexOf(tarPath + suffix);
    t.equal(r.meta.compression, compression);
    t.equal(r.meta.diffId, diffId, `${name}${suffix}: diffID`);
    t.equal(r.meta.compressedDigest, sha256sum(tarPath + suffix));
    t.equal(r.entryCount, plain.entryCount);
  }
  const out = join(work, `${name}-x`);
  mkdirSync(out);
  extract(tarPath, out, xattrs);
  const files = verifyAgainstExtraction(t, plain, tarPath, out, xattrs);
  t.ok(files > 0, `${name}: ${files} regular files compared byte for byte`);
  const listed = tarListing(tarPath);
  const indexed = new Set<string>();
  for (let i = 0; i < plain.entryCount; i++) indexed.add(plain.entryAt(i).path);
  t.same([...indexed].filter((p) => !listed.has(p)), [], `${name}: nothing indexed that tar does not list`);
  t.same([...listed].filter((p) => !indexed.has(p)), [], `${name}: everything tar lists is indexed`);
  return plain;
}
type Tap = Pick<typeof t, 'equal' | 'ok' | 'same' | 'fail' | 'comment'>;

const work = mkdtempSync(join(tmpdir(), 'clip-layer-'));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

t.test('crafted layer with every entry type (pax and gnu formats)', async (t) => {
  const root = join(work, 'crafted');
  mkdirSync(root);
  craftTree(root);
  for (const format of ['pax', 'gnu']) {
    const tarPath = join(work, `crafted-${format}.tar`);
    tarDir(root, tarPath, format);
    const r = await checkLayer(t, work, `crafted-${format}`, tarPath, format === 'pax');
    t.equal(r.lookup('setuid')?.mode, 0o4755);
    t.equal(r.lookup('sticky')?.mode, 0o1777);
    t.equal(r.lookup('wh/gone')?.type, 'whiteout');
    t.equal(r.lookup('opq')?.type === 'dir' && r.lookup('opq')?.type === 'dir' ? (r.lookup('opq') as { opaque: boolean }).opaque : false, true);
    t.equal(r.lookup('hard')?.type === 'hardlink' || r.lookup('a/b/c/deep.txt')?.type === 'hardlink', true);
    t.equal(r.inodeOf('hard'), r.inodeOf('a/b/c/deep.txt'));
    const cap = r.lookup('cap');
    if (format === 'pax') t.equal(r.xattrs(cap!).find((x) => x.name === 'security.capability')?.value.toString('base64'), 'AQAAAgAgAAAAAAAAAAAAAAAAAAA=');
    t.equal(r.lookup('owned')?.uid, 1234);
    t.equal(r.lookup('owned')?.mtimeSec, 1234567890);
    t.same(r.readdir('empty'), []);
    const nul = r.lookup('null');
    t.same(nul?.type === 'char' ? [nul.devMajor, nul.devMinor] : [], [1, 3]);
  }
});

t.test('busybox rootfs', async (t) => {
  const root = join(work, 'busybox');
  mkdirSync(join(root, 'bin'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  sh(join(root, 'bin/busybox'), ['--install', '-s', join(root, 'bin')]);
  for (const p of ['etc', 'tmp', 'proc', 'sys', 'root']) mkdirSync(join(root, p));
  writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const tarPath = join(work, 'busybox.tar');
  tarDir(root, tarPath);
  const r = await checkLayer(t, work, 'busybox', tarPath);
  t.equal(r.lookup('bin/sh')?.type, 'symlink');
  t.ok((r.readdir('bin')?.length ?? 0) > 100, 'busybox applets listed');
});

t.test('debootstrap minbase rootfs', { skip: process.env.CLIP_TEST_DEBOOTSTRAP !== '1' && 'set CLIP_TEST_DEBOOTSTRAP=1' }, async (t) => {
  const root = join(work, 'debian');
  // The mirror apt is configured with: the only Debian archive this machine (and CI) reaches.
  execFileSync('debootstrap', ['--variant=minbase', 'bookworm', root, debianMirror()], { stdio: 'ignore' });
  const tarPath = join(work, 'debian.tar');
  execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '--sort=name', '--exclude=./proc/*', '--exclude=./sys/*', '--exclude=./dev/*', '-cf', tarPath, '-C', root, '.']);
  const r = await checkLayer(t, work, 'debian', tarPath);
  t.equal(r.lookup('usr/bin/dpkg')?.type, 'file');
});
