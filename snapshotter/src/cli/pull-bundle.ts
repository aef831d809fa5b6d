/**
 * Where `clip-snapshotter pull` is loaded from. `make build` bundles the command and everything it
 * imports (grpc-js, protobufjs, pino, the OpenTelemetry API: ≈ 300 files) into one
 * CommonJS file with a V8 code cache beside it, because Node 20 resolves, stats and reads each
 * file of an import graph one by one and keeps no compile cache: ≈ 230 ms of a cold node's pull
 * before it had done anything, against ≈ 90 ms for one ES module bundle and less again with the
 * code cache (issue 15, `make bench --only pull-latency`; numbers in the README).
 * The bundle sits beside the compiled command, at the same depth under build/, so the paths the
 * bundled modules resolve against `import.meta.url` (the .proto files) stay the same.
 */
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

/** The bundled command (CommonJS), written by `bundle-pull-command.ts` at build time. */
export const PULL_BUNDLE_URL = new URL('./pull-command.bundle.cjs', import.meta.url);
/** The compiled command the bundle is made from. */
export const PULL_COMMAND_URL = new URL('./pull-command.js', import.meta.url);
/** The name `import.meta.url` is rewritten to inside the bundle (CommonJS has no import.meta). */
export const BUNDLE_URL_NAME = '__clipBundleUrl';

export type PullModule = typeof import('./pull-command.js');

/**
 * What the command prints on stderr, then why, when it loads module by module (no bundle, or a
 * stale one): the benchmarks refuse such a pull, whose time would carry ≈ 90 ms more.
 */
export const UNBUNDLED_PULL_WARNING = 'clip-snapshotter pull: loading module by module';

/** The V8 code cache of a bundle: beside it. */
export const codeCachePath = (bundle: string): string => `${bundle}.v8cache`;

/** What to load: the bundle when it is at least as new as the compiled command, else why not. */
export function pullModuleChoice(bundle: URL = PULL_BUNDLE_URL, compiled: URL = PULL_COMMAND_URL): { url: URL; stale?: string } {
  const mtime = (u: URL): number | undefined => {
    try {
      return statSync(fileURLToPath(u)).mtimeMs;
    } catch {
      return undefined;
    }
  };
  const b = mtime(bundle);
  const c = mtime(compiled);
  if (b === undefined) return { url: compiled, stale: 'no bundle (run `make build`)' };
  // tsc rewrites every output file, so a compile after the last bundling leaves the bundle older.
  if (c !== undefined && b < c) return { url: compiled, stale: 'the bundle is older than the compiled sources (run `make build`)' };
  return { url: bundle };
}

/** A bundle run as CommonJS in this context, and the script it ran (for its code cache). */
export interface LoadedBundle {
  exports: PullModule;
  script: Script;
  /** The code cache was given and V8 took it. */
  cacheAccepted: boolean;
}

/**
 * Run the CommonJS bundle at `path`, compiled with its code cache when one is there (V8 rejects a
 * cache that does not match the source or this V8, and then simply compiles). The wrapper is the
 * same at build time, so the cache made there matches.
 */
export function runBundle(path: string, cachedData?: Buffer): LoadedBundle {
  const source = readFileSync(path, 'utf8');
  const wrapped = `(function (exports, require, module, __filename, __dirname, ${BUNDLE_URL_NAME}) {${source}\n})`;
  const script = new Script(wrapped, { filename: path, ...(cachedData ? { cachedData } : {}) });
  const fn = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} as PullModule };
  const url = pathToFileURL(path);
  fn(module.exports, createRequire(path), module, path, fileURLToPath(new URL('.', url)), url.href);
  return { exports: module.exports, script, cacheAccepted: cachedData !== undefined && !script.cachedDataRejected };
}

/** Load the pull command: the bundle if it is current; otherwise the module graph, saying so on stderr. */
export async function loadPullCommand(): Promise<PullModule> {
  const choice = pullModuleChoice();
  if (choice.stale !== undefined) {
    process.stderr.write(`${UNBUNDLED_PULL_WARNING}: ${choice.stale}\n`);
    return (await import(choice.url.href)) as PullModule;
  }
  const path = fileURLToPath(choice.url);
  let cache: Buffer | undefined;
  try {
    cache = readFileSync(codeCachePath(path));
  } catch {
    cache = undefined; // compiled without it: slower, same result
  }
  return runBundle(path, cache).exports;
}
