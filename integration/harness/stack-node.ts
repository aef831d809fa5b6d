/** One "node": a private containerd with its own clip daemon, plus pull and first-output timing. */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TEST_NAMESPACE, type Containerd } from './containerd.js';
import { daemonConfigToml, type DaemonConfig } from './daemon-config.js';
import { UNBUNDLED_PULL_WARNING } from '../../snapshotter/src/cli/pull-bundle.js';
import { runCommand } from './run-command.js';
import { runClipCli } from './snapshotter.js';
import type { Snapshotter } from './snapshotter.js';
import type { Stack } from './stack.js';

/** A node's daemon settings: everything of the config but containerd's socket, which the node fixes. */
export type DaemonSettings = Omit<DaemonConfig, 'containerdAddress'> & { redisAddresses: string[] };

export interface ClipNode {
  name: string;
  containerd: Containerd;
  snapshotter: Snapshotter;
  configPath: string;
}

/** The layer outcome counts `clip-snapshotter pull` prints as its JSON summary. */
export interface PullSummary {
  lazy: number;
  full: number;
  present: number;
  duration_ms: number;
  /** The command's CPU time during the pull, ms. */
  cpu_ms?: number;
  /** Per-phase wall times in ms (lease, resolve, config, content, layers[], image, each Prepare RPC). */
  phases_ms?: {
    lease: number; resolve: number; config: number; content: number; layers: number[]; image: number;
    prepare_rpcs?: number[]; prepare_rpcs_cpu?: number[]; cpu?: { start: number; config: number; layers: number; content: number; image: number };
  };
  layers: Array<{ index: number; digest: string; mode: 'lazy' | 'full' | 'present' }>;
}

/** Start a clip daemon then a containerd that registers it as the `clip` proxy snapshotter. */
export async function startNode(stack: Stack, name: string, registryHosts: string[], settings: DaemonSettings, dirName = name): Promise<ClipNode> {
  const dir = join(stack.root, dirName);
  mkdirSync(dir, { recursive: true });
  // containerd's socket path is fixed by startContainerd's layout; the daemon needs it up front.
  const containerdAddress = join(stack.root, `${dirName}-containerd`, 'containerd.sock');
  const configPath = join(dir, 'clip-config.toml');
  // The demo's start traces show each container's first reads with their tiers, which only an
  // in-process FUSE server adds to them (README "State, restarts, crashes"); reads never cross the
  // FUSE server socket, so the benchmarks measure the same read path either way.
  writeFileSync(configPath, daemonConfigToml({ containerdAddress, fuseServerMode: 'in_process', ...settings }));
  const snapshotter = await stack.snapshotter(`${dirName}-clip`, ['--config', configPath]);
  const containerd = await stack.containerd(`${dirName}-containerd`, { clip: snapshotter.address }, registryHosts);
  if (containerd.address !== containerdAddress) throw new Error(`containerd socket moved: ${containerd.address}`);
  return { name, containerd, snapshotter, configPath };
}

export interface ClipPullOptions {
  /**
   * Fail when the command loaded module by module (no pull bundle, or one older than the compiled
   * sources: a bare `tsc`) instead of from its bundle: the benchmarks time the pull, and that
   * fallback adds ≈ 90 ms to it without failing. Tests leave it off.
   */
  requireBundle?: boolean;
}

/** `clip-snapshotter pull REF` through this node's containerd; returns its JSON summary. */
export async function clipPull(node: ClipNode, ref: string, opts: ClipPullOptions = {}): Promise<PullSummary> {
  const res = await runClipCli(['pull', ref,
    '--address', node.containerd.address, '--namespace', TEST_NAMESPACE, '--plain-http', '--config', node.configPath], { timeoutMs: 600_000 });
  if (opts.requireBundle) refuseUnbundledPull(res.stderr);
  const line = res.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as PullSummary;
}

/** Throw, naming the fix, when a pull's stderr says it loaded module by module (see `ClipPullOptions.requireBundle`). */
export function refuseUnbundledPull(stderr: string): void {
  const line = stderr.split('\n').find((l) => l.startsWith(UNBUNDLED_PULL_WARNING));
  if (line === undefined) return;
  throw new Error(`clip-snapshotter pull ran without its bundle, so its time would carry ≈ 90 ms of module loading: "${line.trim()}". ` +
    'Run `make build` (tsc alone leaves build/snapshotter/src/cli/pull-command.bundle.cjs stale), then the bench again.');
}

export interface FirstOutput {
  /** ms from start to the first byte on stdout. */
  firstOutputMs: number;
  totalMs: number;
  stdout: string;
  /** ms from start to the first time stdout contained each of the `marks` asked for (absent if never). */
  markMs: Record<string, number>;
}

/**
 * Run `ctr ARGS` and time the first byte of its stdout (the container's output), and when each of
 * `marks` first appears in it (container exit also waits for ctr's teardown, so a phase inside
 * the container is timed between two marks it prints).
 */
export function timeFirstOutput(c: Containerd, args: string[], timeoutMs = 600_000, marks: string[] = []): Promise<FirstOutput> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('ctr', ['--address', c.address, '--namespace', TEST_NAMESPACE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let first = -1;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const markMs: Record<string, number> = {};
    let seen = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => {
      const now = performance.now() - started;
      if (first < 0) first = now;
      out.push(b);
      if (marks.length > 0) {
        seen += b.toString('latin1');
        for (const m of marks) if (markMs[m] === undefined && seen.includes(m)) markMs[m] = Math.round(now);
      }
    });
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString();
      if (code !== 0 || first < 0) reject(new Error(`ctr ${args.join(' ')} exited ${code}: ${Buffer.concat(err).toString()}${stdout}`));
      else resolve({ firstOutputMs: Math.round(first), totalMs: Math.round(performance.now() - started), stdout, markMs });
    });
  });
}

/** `ctr run --rm --snapshotter SN REF ID CMD…` with runc state under the node's private dirs. */
export function runArgs(c: Containerd, snapshotter: string, ref: string, id: string, cmd: string[]): string[] {
  return ['run', '--rm', '--snapshotter', snapshotter, ...c.runcArgs(), ref, id, ...cmd];
}

/** Remote snapshots of this node's clip daemon (`containerd.io/snapshot/remote` label present). */
export async function remoteSnapshotCount(c: Containerd): Promise<number> {
  const res = await runCommand('ctr', ['--address', c.address, '--namespace', TEST_NAMESPACE, 'snapshots', '--snapshotter', 'clip', 'ls'], { allowFailure: true });
  if (res.code !== 0) return 0;
  let n = 0;
  for (const key of res.stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]).filter(Boolean)) {
    const info = await runCommand('ctr', ['--address', c.address, '--namespace', TEST_NAMESPACE, 'snapshots', '--snapshotter', 'clip', 'info', key as string], { allowFailure: true });
    if (info.stdout.includes('containerd.io/snapshot/remote')) n++;
  }
  return n;
}
