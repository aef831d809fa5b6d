/** Small helpers shared by the bench entries: node children without tap's env, RSS, overlayref. */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManagedProcess } from '../harness/managed-process.js';
import { REPO_ROOT } from '../harness/snapshotter.js';
import { runCommand, type CommandResult, type RunOptions } from '../harness/run-command.js';
import { socketAccepts, waitUntil, WaitAborted } from '../harness/wait.js';
import type { Stack } from '../harness/stack.js';

export const GO_BIN = join(REPO_ROOT, '.work', 'bin');
const UNSET_TAP_ENV = ['-u', 'NODE_OPTIONS', '-u', '_TAPJS_PROCESSINFO_EXCLUDE_', '-u', '_TAPJS_PROCESSINFO_EXTERNAL_ID_'];

/** Run a compiled script of this repo (`build/...js`) in a fresh node. */
export function runNodeScript(script: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  return runCommand('/usr/bin/env', [...UNSET_TAP_ENV, process.execPath, join(REPO_ROOT, script), ...args], opts);
}

/** Resident set size of `pid` in bytes (VmRSS), or NaN when it is gone. */
export function rssBytes(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** containerd's overlayfs snapshotter served over the proxy protocol (.work/bin/overlayref). */
export async function startOverlayRef(stack: Stack, name: string): Promise<{ address: string; pid: () => number | undefined }> {
  const bin = join(GO_BIN, 'overlayref');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'make go-tools'`);
  const dir = join(stack.root, name);
  const address = join(dir, 'overlayref.sock');
  mkdirSync(join(dir, 'root'), { recursive: true });
  const logPath = join(dir, 'overlayref.log');
  const proc = new ManagedProcess({ command: bin, args: ['--root', join(dir, 'root'), '--address', address], logPath });
  await waitUntil(`overlayref at ${address}`, async () => {
    if (!proc.running) throw new WaitAborted(`overlayref exited: ${readFileSync(logPath, 'utf8').slice(-1000)}`);
    return socketAccepts(address);
  }, 15_000);
  stack.add(name, () => proc.stop());
  return { address, pid: () => proc.pid };
}

/** Resident memory and CPU time of a process and all its descendants (e.g. a daemon and its FUSE server). */
export interface TreeUsage {
  rssBytes: number;
  cpuSeconds: number;
  processes: number;
}

const CLOCK_TICKS = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux.

/** `pid` and every process below it in /proc's parent links right now; NaN fields when `pid` is gone. */
export function treeUsage(pid: number | undefined): TreeUsage {
  if (pid === undefined) return { rssBytes: NaN, cpuSeconds: NaN, processes: 0 };
  const stats = new Map<number, { ppid: number; cpu: number }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Fields after the command (which may hold spaces) start at `)`: state ppid … utime(14) stime(15).
      const text = readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(name), { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / CLOCK_TICKS });
    } catch {
      // exited while listing
    }
  }
  if (!stats.has(pid)) return { rssBytes: NaN, cpuSeconds: NaN, processes: 0 };
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [p, s] of stats) if (s.ppid === tree[i]) tree.push(p);
  let rss = 0;
  let cpu = 0;
  for (const p of tree) {
    const r = rssBytes(p);
    if (!Number.isNaN(r)) rss += r;
    cpu += stats.get(p)?.cpu ?? 0;
  }
  return { rssBytes: rss, cpuSeconds: cpu, processes: tree.length };
}
