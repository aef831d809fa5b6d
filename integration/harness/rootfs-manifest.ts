/** A comparable description of a mounted root filesystem, and a readable diff of two of them. */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './run-command.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';

export interface ManifestEntry {
  type: EntryType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Regular files and symlinks only: directory sizes depend on the filesystem. */
  size?: number;
  sha256?: string;
  linkTarget?: string;
  /** Devices: `major:minor`. */
  rdev?: string;
  /** Name → hex value. */
  xattrs: Record<string, string>;
  /** Non-directories with more than one name: the first path (sorted) sharing its (dev, ino). */
  hardlinkGroup?: string;
  nlink?: number;
}

/** Root-relative path (`/bin/sh`) → entry. */
export type Manifest = Map<string, ManifestEntry>;

function typeOf(st: import('node:fs').BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// Linux dev_t encoding (glibc's gnu_dev_major/minor).
function devString(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

// getfattr prints names as text with control bytes and backslashes as \ooo.
function unescapeGetfattr(s: string): string {
  const src = Buffer.from(s, 'utf8');
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) {
    const oct = src.subarray(i + 1, i + 4).toString('latin1');
    if (src[i] === 0x5c && /^[0-7]{3}$/.test(oct)) {
      out.push(parseInt(oct, 8));
      i += 3;
    } else {
      out.push(src[i] as number);
    }
  }
  return Buffer.from(out).toString('utf8');
}

/** All xattrs below `dir` (not following symlinks), keyed by absolute path. */
export async function readXattrs(dir: string): Promise<Map<string, Record<string, string>>> {
  const res = await runCommand('getfattr', ['-R', '-h', '-P', '-d', '-m', '-', '--absolute-names', '-e', 'hex', dir], { allowFailure: true, timeoutMs: 120_000 });
  const result = new Map<string, Record<string, string>>();
  let current: Record<string, string> | undefined;
  for (const line of res.stdout.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = {};
      result.set(unescapeGetfattr(line.slice(8)), current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      current[line.slice(0, eq)] = line.slice(eq + 1);
    }
  }
  return result;
}

/** Walk `dir` (a mounted rootfs) without following symlinks or crossing into other mounts' semantics. */
export async function snapshotRootfs(dir: string): Promise<Manifest> {
  const xattrs = await readXattrs(dir);
  const manifest: Manifest = new Map();
  const inodes = new Map<string, string[]>();
  const walk = async (rel: string): Promise<void> => {
    const abs = rel === '/' ? dir : join(dir, rel);
    const st = await lstat(abs, { bigint: true });
    const type = typeOf(st);
    const entry: ManifestEntry = { type, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), xattrs: xattrs.get(abs) ?? {} };
    if (type === 'file') {
      entry.size = Number(st.size);
      entry.sha256 = await sha256File(abs);
    } else if (type === 'symlink') {
      entry.linkTarget = await readlink(abs);
      entry.size = Number(st.size);
    } else if (type === 'char' || type === 'block') {
      entry.rdev = devString(st.rdev);
    }
    if (type !== 'dir' && st.nlink > 1n) {
      entry.nlink = Number(st.nlink);
      const key = `${st.dev}:${st.ino}`;
      inodes.set(key, [...(inodes.get(key) ?? []), rel]);
    }
    manifest.set(rel, entry);
    if (type === 'dir') {
      for (const name of (await readdir(abs)).sort()) await walk(rel === '/' ? `/${name}` : `${rel}/${name}`);
    }
  };
  await walk('/');
  for (const paths of inodes.values()) {
    const group = [...paths].sort()[0] as string;
    for (const p of paths) (manifest.get(p) as ManifestEntry).hardlinkGroup = group;
  }
  return manifest;
}

const FIELDS: Array<keyof ManifestEntry> = ['type', 'mode', 'uid', 'gid', 'size', 'sha256', 'linkTarget', 'rdev', 'hardlinkGroup', 'nlink'];

function show(field: keyof ManifestEntry, v: unknown): string {
  if (v === undefined) return '-';
  return field === 'mode' ? `0o${(v as number).toString(8)}` : String(v);
}

/** Human-readable differences between `a` and `b`; empty when they describe the same tree. */
export function diffManifests(a: Manifest, b: Manifest, names: [string, string] = ['a', 'b']): string[] {
  const out: string[] = [];
  for (const path of [...new Set([...a.keys(), ...b.keys()])].sort()) {
    const ea = a.get(path);
    const eb = b.get(path);
    if (!ea || !eb) {
      out.push(`${path}: only in ${ea ? names[0] : names[1]} (${(ea ?? eb)?.type})`);
      continue;
    }
    for (const f of FIELDS) {
      if (ea[f] !== eb[f]) out.push(`${path}: ${f} ${show(f, ea[f])} (${names[0]}) != ${show(f, eb[f])} (${names[1]})`);
    }
    for (const x of [...new Set([...Object.keys(ea.xattrs), ...Object.keys(eb.xattrs)])].sort()) {
      if (ea.xattrs[x] !== eb.xattrs[x]) out.push(`${path}: xattr ${x} ${ea.xattrs[x] ?? '-'} (${names[0]}) != ${eb.xattrs[x] ?? '-'} (${names[1]})`);
    }
  }
  return out;
}
