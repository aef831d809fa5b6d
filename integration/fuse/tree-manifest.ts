/**
 * Prints a JSON manifest of a directory tree (lstat fields, content sha256, symlink targets and
 * xattrs per path). Run as a separate process: the test process serves the FUSE mount, and
 * walking the mount from inside it could exhaust libuv's thread pool with requests that need it.
 *
 *   node tree-manifest.js DIR
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export interface ManifestEntry {
  mode: number;
  uid: number;
  gid: number;
  size: number | null;
  nlink: number;
  ino: number;
  rdev: number;
  mtimeMs: number;
  blocks: number;
  sha256?: string;
  target?: string;
  xattrs: Record<string, string>;
}

async function sha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

// getfattr prints hex values (-e hex) for every namespace (-m -), without following symlinks (-h).
async function xattrs(path: string): Promise<Record<string, string>> {
  const { stdout } = await promisify(execFile)('getfattr', ['-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', path]).catch(() => ({ stdout: '' }));
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^([^#=][^=]*)=(.*)$/.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

async function walk(root: string, rel: string, out: Record<string, ManifestEntry>): Promise<void> {
  const path = join(root, rel);
  const st = await lstat(path);
  const e: ManifestEntry = {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.isDirectory() ? null : st.size, nlink: st.nlink, ino: st.ino,
    rdev: st.rdev, mtimeMs: Math.floor(st.mtimeMs), blocks: st.blocks, xattrs: await xattrs(path),
  };
  if (st.isFile()) e.sha256 = await sha256(path);
  if (st.isSymbolicLink()) e.target = await readlink(path);
  out[rel === '' ? '.' : rel] = e;
  if (st.isDirectory()) {
    for (const name of (await readdir(path)).sort()) await walk(root, rel === '' ? name : `${rel}/${name}`, out);
  }
}

/** Manifest of every path under `root`. */
export async function treeManifest(root: string): Promise<Record<string, ManifestEntry>> {
  const out: Record<string, ManifestEntry> = {};
  await walk(root, '', out);
  return out;
}

if (process.argv[1]?.endsWith('tree-manifest.js') && process.argv[2] !== undefined) {
  process.stdout.write(JSON.stringify(await treeManifest(process.argv[2])));
}
