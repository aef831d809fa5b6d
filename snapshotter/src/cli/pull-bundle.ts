/**
 * Where `clip-snapshotter pull` is loaded from. `make build` bundles the command and everything it
 * imports (grpc-js, protobufjs, undici, pino, the OpenTelemetry API: ≈ 300 files) into one file,
 * because Node 20 resolves, stats and reads each file of an import graph one by one — ≈ 140 ms of
 * a cold node's pull before it had done anything (issue 15, `make bench --only pull-latency`).
 * The bundle sits beside the compiled command, at the same depth under build/, so paths the
 * bundled modules resolve against `import.meta.url` (the .proto files) stay the same.
 */
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The bundled command, written by `bundle-pull-command.ts` at build time. */
export const PULL_BUNDLE_URL = new URL('./pull-command.bundle.mjs', import.meta.url);
/** The compiled command the bundle is made from. */
export const PULL_COMMAND_URL = new URL('./pull-command.js', import.meta.url);

export type PullModule = typeof import('./pull-command.js');

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

/** Load the pull command: the bundle if it is current; otherwise the module graph, saying so on stderr. */
export async function loadPullCommand(): Promise<PullModule> {
  const choice = pullModuleChoice();
  if (choice.stale !== undefined) process.stderr.write(`clip-snapshotter pull: loading module by module: ${choice.stale}\n`);
  return (await import(choice.url.href)) as PullModule;
}
