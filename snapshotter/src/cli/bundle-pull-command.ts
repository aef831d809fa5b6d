/**
 * Build step (`make build`, after tsc): bundle the compiled pull command into one CommonJS file
 * beside it and write its V8 code cache (see `pull-bundle.ts` for why), and write the containerd
 * API definitions parsed, so no pull parses .proto text (`containerd/proto.ts`). esbuild is a dev
 * dependency; an installed tree (`npm ci --omit=dev`) ships both files from build/ and never runs
 * this.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DESCRIPTOR_URL, descriptorJson } from '../containerd/proto.js';
import { BUNDLE_URL_NAME, PULL_BUNDLE_URL, PULL_COMMAND_URL, codeCachePath, runBundle } from './pull-bundle.js';

/** The part of esbuild's API used here (typed locally: a tree without dev dependencies still compiles). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<unknown>;
}

const loadEsbuild = async (): Promise<Esbuild> => (await import('esbuild' as string)) as Esbuild;

/** Whether esbuild is installed (`make deps`); it is not in a tree installed with `--omit=dev`. */
export async function esbuildAvailable(): Promise<boolean> {
  return loadEsbuild().then(() => true, () => false);
}

/**
 * Bundle `entry` into `outfile` (fails on any unresolved import), run it once and write the code
 * cache of everything that run compiled. Returns the cache's size in bytes.
 */
export async function bundlePullCommand(entry = fileURLToPath(PULL_COMMAND_URL), outfile = fileURLToPath(PULL_BUNDLE_URL)): Promise<number> {
  const { build } = await loadEsbuild();
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    logLevel: 'warning',
    // CommonJS has no import.meta: the loader passes the bundle's own URL under this name.
    define: { 'import.meta.url': BUNDLE_URL_NAME },
  });
  const cache = runBundle(outfile).script.createCachedData();
  writeFileSync(codeCachePath(outfile), cache);
  return cache.length;
}

/** Write the parsed containerd API definitions where `containerdServices` looks for them. */
export function writeContainerdDescriptor(url: URL = DESCRIPTOR_URL): void {
  writeFileSync(url, descriptorJson());
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeContainerdDescriptor();
  bundlePullCommand().catch((err: unknown) => {
    process.stderr.write(`bundling the pull command failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
