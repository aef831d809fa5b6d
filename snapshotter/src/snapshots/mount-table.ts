import { readFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A line of /proc/self/mountinfo that matters here. */
export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

/** Undo the octal escapes (`\040` for a space) the kernel uses in mountinfo. */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Mounts at or below `prefix`, deepest first (the order they must be unmounted in). */
export async function mountsUnder(prefix: string): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = unescape(left.split(' ')[4] ?? '');
    const [fsType = '', source = ''] = right.split(' ');
    if (mountPoint === prefix || mountPoint.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) {
      out.push({ mountPoint, fsType, source: unescape(source) });
    }
  }
  return out.sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

/** Unmount a path; a lazy detach when busy, because a dead FUSE daemon's mounts never become idle. */
export async function unmount(path: string): Promise<void> {
  try {
    await run('umount', [path]);
  } catch {
    await run('umount', ['-l', path]);
  }
}
