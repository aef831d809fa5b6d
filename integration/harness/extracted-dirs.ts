/**
 * Where a daemon extracted a completed layer: dirs under `<root>/cache/extracted` are named by a key
 * over the diffID and the index (issue 12), and their record.json names the diffID.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The extracted dir of `diffId` under the daemon root `root`, or a path that does not exist yet. */
export function extractedDirOf(root: string, diffId: string): string {
  const dir = join(root, 'cache', 'extracted');
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    if (name.startsWith('.')) continue;
    try {
      if ((JSON.parse(readFileSync(join(dir, name, 'record.json'), 'utf8')) as { diffId?: string }).diffId === diffId) return join(dir, name);
    } catch {
      // not complete yet
    }
  }
  return join(dir, `not-extracted-${diffId.slice('sha256:'.length)}`);
}
