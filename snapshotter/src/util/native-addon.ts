/**
 * Finds and loads one of this project's N-API addons (built by node-gyp into
 * snapshotter/native/build/Release): `$<envVar>` first, else the first ancestor of the calling
 * module's directory that holds the build output, so it works from src/ (tests) and build/ alike.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The addon `name` (e.g. `clip_zran`), or undefined when it has not been built. */
export function loadNativeAddon<T>(name: string, envVar: string, callerUrl: string): T | undefined {
  const rel = join('snapshotter', 'native', 'build', 'Release', `${name}.node`);
  const env = process.env[envVar];
  const candidates = env ? [env] : [];
  for (let dir = dirname(fileURLToPath(callerUrl)); ; dir = dirname(dir)) {
    candidates.push(join(dir, rel));
    if (dirname(dir) === dir) break;
  }
  const path = candidates.find((p) => existsSync(p));
  return path === undefined ? undefined : (createRequire(callerUrl)(path) as T);
}
