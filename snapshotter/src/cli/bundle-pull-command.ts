/**
 * Build step (`make build`, after tsc): bundle the compiled pull command into one ES module
 * beside it (see `pull-bundle.ts` for why). esbuild is a dev dependency; an installed tree
 * (`npm ci --omit=dev`) ships the bundle from build/ and never runs this.
 */
import { fileURLToPath } from 'node:url';
import { PULL_BUNDLE_URL, PULL_COMMAND_URL } from './pull-bundle.js';

/** The part of esbuild's API used here (typed locally: a tree without dev dependencies still compiles). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<unknown>;
}

/** Whether esbuild is installed (`make deps`); it is not in a tree installed with `--omit=dev`. */
export async function esbuildAvailable(): Promise<boolean> {
  return loadEsbuild().then(() => true, () => false);
}

const loadEsbuild = async (): Promise<Esbuild> => (await import('esbuild' as string)) as Esbuild;

/** Bundle `entry` into `outfile`; fails on any unresolved import. */
export async function bundlePullCommand(entry = fileURLToPath(PULL_COMMAND_URL), outfile = fileURLToPath(PULL_BUNDLE_URL)): Promise<void> {
  const { build } = await loadEsbuild();
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    logLevel: 'warning',
    // The CommonJS packages inside call require() (built-in modules, optional peers): give the ES
    // module one.
    banner: { js: "import { createRequire as __clipCreateRequire } from 'node:module'; const require = __clipCreateRequire(import.meta.url);" },
  });
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  bundlePullCommand().catch((err: unknown) => {
    process.stderr.write(`bundling the pull command failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
