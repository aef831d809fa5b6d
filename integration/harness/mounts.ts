/** Finding and removing every mount below a directory, deepest first. */
import { readFileSync } from 'node:fs';
import { runCommand } from './run-command.js';

export interface MountEntry {
  mountPoint: string;
  fsType: string;
  source: string;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Every mount of this mount namespace at or below `dir`, deepest (and latest) first. */
export function mountsUnder(dir: string): MountEntry[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const entries: MountEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const sep = fields.indexOf('-');
    const mp = fields[4];
    if (mp === undefined || sep < 0) continue;
    const mountPoint = unescapeMountinfo(mp);
    if (mountPoint !== dir && !mountPoint.startsWith(prefix)) continue;
    entries.push({ mountPoint, fsType: fields[sep + 1] ?? '', source: unescapeMountinfo(fields[sep + 2] ?? '') });
  }
  // Later lines are mounted later; reversing before the stable depth sort unmounts stacked mounts top-down.
  return entries.reverse().sort((a, b) => b.mountPoint.split('/').length - a.mountPoint.split('/').length);
}

/** Unmount everything below `dir`; a mount that refuses is detached lazily. Returns what was unmounted. */
export async function unmountAllUnder(dir: string): Promise<string[]> {
  const done: string[] = [];
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(dir);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      const res = await runCommand('umount', [m.mountPoint], { allowFailure: true, timeoutMs: 15_000 });
      if (res.code !== 0) await runCommand('umount', ['-l', m.mountPoint], { allowFailure: true, timeoutMs: 15_000 });
      done.push(m.mountPoint);
    }
  }
  return done;
}
