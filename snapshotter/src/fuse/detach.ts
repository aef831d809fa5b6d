/**
 * Getting a FUSE mount out of the namespace no matter what: a lazy detach never waits for open
 * files, and every command runs under a timeout so the daemon cannot hang on a dead mount.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

const COMMAND_TIMEOUT_MS = 10_000;

/** Undo mountinfo's octal escapes (`\040` for a space). */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** True when `path` is a mount point in this mount namespace. */
export async function isMountPoint(path: string): Promise<boolean> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of text.split('\n')) {
    const mp = line.split(' ', 5)[4];
    if (mp !== undefined && unescape(mp) === path) return true;
  }
  return false;
}

/**
 * The `major:minor` of the file system mounted at `path` (the topmost mount there), or undefined.
 * Read from mountinfo, never by stat: a FUSE server must not stat its own mount.
 */
export async function mountDevice(path: string): Promise<string | undefined> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  let dev: string | undefined;
  for (const line of text.split('\n')) {
    const f = line.split(' ', 5);
    if (f[4] !== undefined && unescape(f[4]) === path) dev = f[2];
  }
  return dev;
}

/** Lazily detach a mount: `fusermount -uz`, then `umount -l`; resolves once it is gone or both failed. */
export async function lazyDetach(path: string): Promise<void> {
  for (const [cmd, args] of [['fusermount', ['-uz', path]], ['umount', ['-l', path]]] as const) {
    if (!(await isMountPoint(path))) return;
    await run(cmd, [...args]).catch(() => undefined);
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: COMMAND_TIMEOUT_MS }, (err) => (err ? reject(err) : resolve()));
  });
}
