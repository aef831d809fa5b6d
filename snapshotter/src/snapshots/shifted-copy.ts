/**
 * A copy of an on-disk layer with every owner moved into a user namespace's host range: the view
 * a user-namespaced container gets of a layer that is not served over FUSE. Made once per layer
 * and mapping, not once per container, and published by rename so a half-made copy is never used.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lchown, lstat, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { internal, messageOf } from '../errors/index.js';
import type { IdMapping } from './id-mapping.js';

const run = promisify(execFile);
/** `cp` of a layer is bounded like any other wait; a layer that takes longer fails the Prepare. */
const COPY_TIMEOUT_MS = 30 * 60_000;
const SETID_BITS = 0o6000;

/** Copy `src` to `dst` (which must not exist) with owners translated by `ids`. */
export async function shiftedCopy(src: string, dst: string, ids: IdMapping): Promise<void> {
  const tmp = `${dst}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    // cp -a keeps hardlinks, device nodes (overlay whiteouts) and xattrs (overlay opaque markers).
    await run('cp', ['-a', '--reflink=auto', '--', src, tmp], { timeout: COPY_TIMEOUT_MS });
    await shiftTree(tmp, ids, new Set());
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw internal('CLIP_IDMAP_COPY_FAILED', `id-shifted copy of ${src}: ${messageOf(err)}`, err);
  }
}

// `done` holds inodes with several links: a hardlinked file is shifted once, not once per name.
async function shiftTree(path: string, ids: IdMapping, done: Set<number>): Promise<void> {
  const st = await lstat(path);
  if (!st.isDirectory() && st.nlink > 1) {
    if (done.has(st.ino)) return;
    done.add(st.ino);
  }
  await lchown(path, ids.uid(st.uid), ids.gid(st.gid));
  // chown clears setuid/setgid on files; the container must see the layer's modes unchanged.
  if (!st.isSymbolicLink() && (st.mode & SETID_BITS) !== 0) await chmod(path, st.mode & 0o7777);
  if (!st.isDirectory()) return;
  for (const name of await readdir(path)) await shiftTree(join(path, name), ids, done);
}
