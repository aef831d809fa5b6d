/**
 * The secret search of the credential tests: every regular file under a test's temp root (logs of
 * every service, the daemon's state and caches, containerd's root, container logs) read whole and
 * searched for each secret. Mounts below the root (FUSE layers, container root filesystems) are
 * not entered: they show image content, not what a component wrote.
 */
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** For each secret (by name), the files under `root` that hold it, relative to `root`. */
export function filesHoldingSecrets(root: string, secrets: Record<string, string>): Record<string, string[]> {
  const found: Record<string, string[]> = Object.fromEntries(Object.keys(secrets).map((k) => [k, []]));
  const needles = Object.entries(secrets).map(([name, value]) => {
    if (value.length < 8) throw new Error(`secret ${name} is too short to search for`);
    return [name, Buffer.from(value)] as const;
  });
  const rootDev = lstatSync(root).dev;
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return; // removed meanwhile
    }
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = lstatSync(path);
      } catch {
        continue;
      }
      if (st.dev !== rootDev) continue; // a mount point
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        let data: Buffer;
        try {
          data = readFileSync(path);
        } catch {
          continue;
        }
        for (const [n, needle] of needles) if (data.includes(needle)) found[n]!.push(relative(root, path));
      }
    }
  };
  walk(root);
  return found;
}
