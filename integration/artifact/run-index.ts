/** Run `clip-snapshotter index …` as a child process (through the CLI once `main.ts` wires it). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, SNAPSHOTTER_BIN, SNAPSHOTTER_MAIN, runCommand, type CommandResult } from '../harness/index.js';

const INDEX_COMMAND_JS = join(REPO_ROOT, 'build/snapshotter/src/cli/index-command.js');
// tap rewrites NODE_OPTIONS to load its hooks into children; the CLI must run without them.
const UNSET_TAP_ENV = ['-u', 'NODE_OPTIONS', '-u', '_TAPJS_PROCESSINFO_EXCLUDE_', '-u', '_TAPJS_PROCESSINFO_EXTERNAL_ID_'];

/** True when `clip-snapshotter index` reaches `indexCommand` through the CLI entry point. */
export function cliWired(): boolean {
  return readFileSync(SNAPSHOTTER_MAIN, 'utf8').includes('indexCommand');
}

/** Run the command with `args`; never throws on a non-zero exit. */
export function runIndex(args: string[], timeoutMs = 60_000): Promise<CommandResult> {
  const entry = cliWired()
    ? [SNAPSHOTTER_BIN, 'index', ...args]
    : ['--input-type=module', '-e', `import(${JSON.stringify(INDEX_COMMAND_JS)}).then((m) => m.indexCommand(process.argv.slice(1))).then((c) => process.exit(c))`, '--', ...args];
  return runCommand('/usr/bin/env', [...UNSET_TAP_ENV, process.execPath, ...entry], { allowFailure: true, timeoutMs });
}

/** Summary of one image manifest as the command prints it. */
export interface ManifestSummary {
  platform?: string;
  subject: string;
  artifact: string;
  pushed: boolean;
  layers: Array<{ digest: string; diffId: string; entries: number; indexBytes: number; reused: boolean }>;
}

export type IndexSummary = ManifestSummary & { image: string; durationMs: number };

/** Registry access-log lines that write (blob uploads, manifest PUTs). */
export function writeRequests(logPath: string): string[] {
  return readFileSync(logPath, 'utf8').split('\n').filter((l) => /"(PUT|POST|PATCH) \/v2\//.test(l));
}
