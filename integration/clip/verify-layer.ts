/**
 * Checks a clip index against GNU tar's own view of the same layer: the bytes at every regular
 * file's (offset, length) equal what `tar -x` extracted, and type, mode, owner, mtime, size, link
 * target, device numbers, xattrs and hardlink identity match the extracted filesystem.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, openSync, readFileSync, readSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type tap from 'tap';
import type { ClipIndexReader, Entry } from '../../snapshotter/src/clip/index.js';

type T = Pick<typeof tap, 'equal' | 'ok' | 'same' | 'fail' | 'comment'>;

/** Extract `tarPath` with GNU tar into `dir` (xattrs, owners, devices). */
export function extract(tarPath: string, dir: string, xattrs = true): void {
  const x = xattrs ? ['--xattrs', '--xattrs-include=*'] : [];
  execFileSync('tar', [...x, '--numeric-owner', '-xpf', tarPath, '-C', dir]);
}

/** Hex-encoded xattrs of a path as getfattr reports them. */
function xattrsOf(path: string): Map<string, string> {
  const out = execFileSync('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path], { encoding: 'utf8' });
  const m = new Map<string, string>();
  for (const line of out.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0 && !line.startsWith('#')) m.set(line.slice(0, eq), line.slice(eq + 1).toLowerCase());
  }
  return m;
}

const TYPE_BITS: Record<string, number> = { file: 0o100000, hardlink: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** Name of an entry in the extracted tree (whiteouts keep their `.wh.` name there). */
function onDisk(root: string, e: Entry): string {
  if (e.type !== 'whiteout') return join(root, e.path);
  const slash = e.path.lastIndexOf('/');
  return join(root, e.path.slice(0, slash + 1) + '.wh.' + e.name);
}

/** Compare every entry of the index with the extracted tree; returns the number of files checked. */
export function verifyAgainstExtraction(t: T, r: ClipIndexReader, tarPath: string, root: string, xattrs = true): number {
  const fd = openSync(tarPath, 'r');
  let files = 0;
  let mismatches = 0;
  const fail = (msg: string): void => {
    if (mismatches++ < 20) t.fail(msg);
  };
  try {
    for (let i = 0; i < r.entryCount; i++) {
      const e = r.entryAt(i);
      const p = onDisk(root, e);
      const st = lstatSync(p, { bigint: false });
      if (e.type === 'whiteout') {
        if (!st.isFile()) fail(`${e.path}: whiteout marker missing`);
        continue;
      }
      if ((st.mode & 0o170000) !== TYPE_BITS[e.type]) fail(`${e.path}: type ${e.type} vs mode ${st.mode.toString(8)}`);
      if (e.type !== 'symlink' && (st.mode & 0o7777) !== e.mode) fail(`${e.path}: mode ${e.mode.toString(8)} vs ${(st.mode & 0o7777).toString(8)}`);
      if (st.uid !== e.uid || st.gid !== e.gid) fail(`${e.path}: owner ${e.uid}:${e.gid} vs ${st.uid}:${st.gid}`);
      if (e.path !== '' && e.type !== 'symlink' && Math.floor(st.mtimeMs / 1000) !== e.mtimeSec) fail(`${e.path}: mtime ${e.mtimeSec} vs ${st.mtimeMs}`);
      if (e.type === 'dir' && e.opaque && !existsSync(join(p, '.wh..wh..opq'))) fail(`${e.path}: opaque marker missing`);
      if (e.type === 'symlink' && readlinkSync(p) !== e.target) fail(`${e.path}: symlink target`);
      if (e.type === 'char' || e.type === 'block') {
        const major = Math.floor(st.rdev / 256) & 0xfff;
        const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        if (major !== e.devMajor || minor !== e.devMinor) fail(`${e.path}: device ${e.devMajor},${e.devMinor} vs ${major},${minor}`);
      }
      if (e.type === 'hardlink') {
        const target = lstatSync(join(root, e.target));
        if (target.ino !== st.ino) fail(`${e.path}: hardlink does not share ${e.target}'s inode`);
        if (st.nlink !== e.nlink) fail(`${e.path}: nlink ${e.nlink} vs ${st.nlink}`);
      }
      if (e.type === 'file' || (e.type === 'hardlink' && e.linkedType === 'file')) {
        files++;
        if (st.size !== e.size) fail(`${e.path}: size ${e.size} vs ${st.size}`);
        const buf = Buffer.alloc(e.size);
        if (e.size > 0) readSync(fd, buf, 0, e.size, e.dataOffset);
        const want = readFileSync(p);
        if (!buf.equals(want)) fail(`${e.path}: bytes at offset ${e.dataOffset} differ from the extracted file`);
      }
      if (xattrs && (e.xattrCount > 0 || e.type === 'file')) {
        const disk = xattrsOf(p);
        const idx = new Map(r.xattrs(e).map((x) => [x.name, '0x' + x.value.toString('hex')]));
        for (const [k, v] of idx) if (disk.get(k) !== v) fail(`${e.path}: xattr ${k} ${v} vs ${disk.get(k)}`);
        for (const k of disk.keys()) if (!idx.has(k) && !k.startsWith('system.') && !k.startsWith('security.selinux')) fail(`${e.path}: xattr ${k} missing from the index`);
      }
    }
  } finally {
    closeSync(fd);
  }
  t.equal(mismatches, 0, `every entry of ${r.entryCount} matches the extracted tree`);
  return files;
}

/** Paths GNU tar lists, mapped the way the index stores them. */
export function tarListing(tarPath: string): Set<string> {
  const out = execFileSync('tar', ['-tf', tarPath], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const paths = new Set<string>(['']);
  for (const raw of out.split('\n')) {
    if (raw === '') continue;
    const p = raw.replace(/^\.\/?/, '').replace(/\/$/, '');
    const base = p.slice(p.lastIndexOf('/') + 1);
    if (base === '.wh..wh..opq') continue;
    paths.add(base.startsWith('.wh.') ? p.slice(0, p.length - base.length) + base.slice(4) : p);
  }
  return paths;
}

/** sha256 of a file as `sha256sum` prints it, prefixed like a diffID. */
export function sha256sum(path: string): string {
  const out = execFileSync('sha256sum', [path], { encoding: 'utf8', maxBuffer: 1 << 20 });
  return `sha256:${out.split(' ')[0] ?? ''}`;
}

