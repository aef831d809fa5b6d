/** Our daemon, `clip-snapshotter serve`, started from the build with logs to a file. */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, forgetReap, reapOnExit } from './managed-process.js';
import { MEMORY_NODE_FLAGS } from '../../snapshotter/src/cli/node-flags.js';
import { runCommand, type CommandResult, type RunOptions } from './run-command.js';
import { unmountAllUnder } from './mounts.js';
import { socketAccepts, waitUntil, WaitAborted } from './wait.js';

/** The repository root, found from this file's place in build/integration/harness/. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const SNAPSHOTTER_BIN = join(REPO_ROOT, 'snapshotter/bin/clip-snapshotter');
export const SNAPSHOTTER_MAIN = join(REPO_ROOT, 'build/snapshotter/src/cli/main.js');

/** Why the daemon cannot be started yet, or undefined when it can. */
export function snapshotterMissingReason(): string | undefined {
  if (!existsSync(SNAPSHOTTER_MAIN)) return `${SNAPSHOTTER_MAIN} is missing (build the snapshotter first)`;
  return undefined;
}

// tap's processinfo rewrites NODE_OPTIONS on every spawn to load its hooks, which breaks the
// daemon's ESM entry point; `env -u` drops it after that rewrite and then execs node (same pid).
const UNSET_TAP_ENV = ['-u', 'NODE_OPTIONS', '-u', '_TAPJS_PROCESSINFO_EXCLUDE_', '-u', '_TAPJS_PROCESSINFO_EXTERNAL_ID_'];

/** Run the `clip-snapshotter` CLI from the build as production would (tap's loader not injected). */
// CLIP_CLI_NODE_ARGS: extra Node flags for the command while looking into a run (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
export function runClipCli(args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const extra = process.env['CLIP_CLI_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  return runCommand('/usr/bin/env', [...UNSET_TAP_ENV, process.execPath, ...extra, SNAPSHOTTER_BIN, ...args], opts);
}

export interface SnapshotterOptions {
  root: string;
  address: string;
  logPath?: string;
  logLevel?: string;
  /** Extra flags, e.g. `['--config', file]`. */
  extraArgs?: string[];
  /** The daemon's environment (default: the test's), e.g. a PATH that finds a credential helper. */
  env?: NodeJS.ProcessEnv;
  /**
   * The FUSE server is started by the test as a service manager or pod would (the daemon gets
   * `--no-spawn-fuse-server`): the harness never reads its pid file — whose pid may be of another
   * pid namespace — and never signals it.
   */
  externalFuseServer?: boolean;
}

export interface Snapshotter {
  root: string;
  address: string;
  logPath: string;
  pid(): number | undefined;
  /** True while the current daemon process has not exited. */
  running(): boolean;
  /** Resolves when the current daemon process exits, with its exit code (null after a signal). */
  exited(): Promise<number | null>;
  /** Send a signal and wait for the exit; with SIGKILL nothing is cleaned up, exactly like a crash. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  /** Start again after kill/stop (or stop first with SIGTERM) and wait for the socket. */
  restart(): Promise<void>;
  /** Stop the daemon and the FUSE server (SIGTERM), then unmount whatever is left under the root. */
  stop(): Promise<void>;
  log(): string;
  /** The pid of the FUSE server serving this daemon's layers (separate mode), from its pid file. */
  fuseServerPid(): number | undefined;
  /** Signal the FUSE server and wait until it has exited (SIGKILL after 20 s of SIGTERM). */
  killFuseServer(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Start `fuse-server --take-over` from another install (`copyInstall`), in its own session as
   * the daemon starts one, and wait until it serves in place of the old one (the pid file names it
   * and the old one exited). Returns its pid; its log is `fuse-takeover-<n>.log` beside the socket.
   */
  replaceFuseServer(installDir: string): Promise<number>;
  /** Start `fuse-server --take-over` from `installDir` and return its pid without waiting. */
  startTakeOver(installDir: string): { pid: number; exited: () => string | undefined; log: () => string };
}

/**
 * A second install of this build (what an upgrade puts on disk): the compiled code, the launcher
 * and the native addons copied to `dest`, node_modules linked.
 */
export async function copyInstall(dest: string): Promise<void> {
  mkdirSync(join(dest, 'snapshotter', 'native'), { recursive: true });
  await runCommand('cp', ['-a', join(REPO_ROOT, 'build'), join(REPO_ROOT, 'package.json'), dest]);
  await runCommand('cp', ['-a', join(REPO_ROOT, 'snapshotter', 'bin'), join(dest, 'snapshotter')]);
  await runCommand('cp', ['-a', join(REPO_ROOT, 'snapshotter', 'native', 'build'), join(dest, 'snapshotter', 'native')]);
  symlinkSync(join(REPO_ROOT, 'node_modules'), join(dest, 'node_modules'));
}

/** The command line that runs the CLI of `installDir` (default: this build) outside tap's loader. */
export function clipCommand(args: string[], installDir = REPO_ROOT): string[] {
  return ['/usr/bin/env', ...UNSET_TAP_ENV, process.execPath, join(installDir, 'snapshotter', 'bin', 'clip-snapshotter'), ...args];
}

export interface FuseServerProcessOptions {
  root: string;
  address: string;
  /** Flags after the paths, e.g. `['--config', file, '--take-over=auto']`. */
  args: string[];
  logPath: string;
  /** Another install (`copyInstall`); default this build. */
  installDir?: string;
}

/** `clip-snapshotter fuse-server` started by the test itself, as a Kubernetes pod runs it. */
export function startFuseServerProcess(opts: FuseServerProcessOptions): ManagedProcess {
  const [command, ...args] = clipCommand(['fuse-server', '--root', opts.root, '--address', opts.address, '--log-level', 'debug', ...opts.args], opts.installDir);
  return new ManagedProcess({ command: command!, args, logPath: opts.logPath, cwd: opts.installDir ?? REPO_ROOT });
}

/** True while `pid` exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Start the daemon and wait until its socket accepts connections. */
export async function startSnapshotter(opts: SnapshotterOptions): Promise<Snapshotter> {
  mkdirSync(opts.root, { recursive: true });
  mkdirSync(dirname(opts.address), { recursive: true });
  const logPath = opts.logPath ?? join(dirname(opts.address), 'clip-snapshotter.log');
  // CLIP_DAEMON_NODE_ARGS: extra Node flags for the daemon while looking into a run (e.g. `--cpu-prof --cpu-prof-dir=DIR`).
  // The V8 memory flags the systemd units and the DaemonSet give the daemon (NODE_OPTIONS there).
  const args = [...UNSET_TAP_ENV, process.execPath, ...MEMORY_NODE_FLAGS, ...(process.env['CLIP_DAEMON_NODE_ARGS']?.split(' ').filter(Boolean) ?? []), SNAPSHOTTER_BIN, 'serve', '--root', opts.root, '--address', opts.address, '--log-level', opts.logLevel ?? 'debug', ...(opts.extraArgs ?? []), ...(opts.externalFuseServer ? ['--no-spawn-fuse-server'] : [])];
  const proc = new ManagedProcess({ command: '/usr/bin/env', args, logPath, cwd: REPO_ROOT, ...(opts.env ? { env: opts.env } : {}) });
  const log = (): string => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : '');
  const ready = (): Promise<void> =>
    waitUntil(`clip-snapshotter socket ${opts.address}`, async () => {
      if (!proc.running) throw new WaitAborted(`clip-snapshotter exited: ${log().slice(-2000)}`);
      return socketAccepts(opts.address);
    }, 30_000);
  await ready();
  // The daemon's FUSE server (separate mode) writes its pid beside the sockets; it is not our child.
  const pidFile = join(dirname(opts.address), 'fuse-server.pid');
  const fuseServerPid = (): number | undefined => {
    if (opts.externalFuseServer || !existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
  };
  const trackFuseServer = (): void => {
    const pid = fuseServerPid();
    if (pid !== undefined) reapOnExit(pid);
  };
  trackFuseServer();
  /** FUSE servers this daemon says it started (its "started a FUSE server" records) that still run. */
  const spawnedFuseServers = (): number[] => {
    const pids: number[] = [];
    for (const line of log().split('\n')) {
      if (!line.includes('"started a FUSE server"')) continue;
      try {
        const pid = (JSON.parse(line) as { fuse_server_pid?: unknown }).fuse_server_pid;
        if (typeof pid === 'number' && alive(pid)) pids.push(pid);
      } catch {
        // not a JSON record
      }
    }
    return pids;
  };
  const killOne = async (pid: number, signal: NodeJS.Signals): Promise<void> => {
    try {
      process.kill(pid, signal);
    } catch {
      return; // gone meanwhile
    }
    await waitUntil(`FUSE server ${pid} exits`, async () => !alive(pid), 20_000).catch(async () => {
      process.kill(pid, 'SIGKILL');
      await waitUntil(`FUSE server ${pid} exits after SIGKILL`, async () => !alive(pid), 10_000);
    });
    forgetReap(pid);
  };
  // The daemon starts its FUSE server in the background at start: one stopped that soon may not have
  // written its pid file yet, so the ones the daemon logged as started go too.
  const killFuseServer = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    const pids = new Set([fuseServerPid(), ...(opts.externalFuseServer ? [] : spawnedFuseServers())].filter((p): p is number => p !== undefined));
    for (const pid of pids) await killOne(pid, signal);
  };
  let takeovers = 0;
  const startTakeOver = (installDir: string): { pid: number; exited: () => string | undefined; log: () => string } => {
    const logFile = join(dirname(opts.address), `fuse-takeover-${++takeovers}.log`);
    const out = openSync(logFile, 'a');
    const bin = join(installDir, 'snapshotter', 'bin', 'clip-snapshotter');
    const child = spawn('/usr/bin/env', [...UNSET_TAP_ENV, process.execPath, bin, 'fuse-server', '--take-over', '--root', opts.root, '--address', opts.address, '--log-level', opts.logLevel ?? 'debug', ...(opts.extraArgs ?? [])], {
      detached: true, stdio: ['ignore', out, out], cwd: installDir, ...(opts.env ? { env: opts.env } : {}),
    });
    closeSync(out);
    let exited: string | undefined;
    child.once('exit', (code, sig) => (exited = `exited with ${code ?? sig}`));
    child.unref();
    const pid = child.pid!;
    reapOnExit(pid);
    return { pid, exited: () => exited, log: () => readFileSync(logFile, 'utf8') };
  };
  const replaceFuseServer = async (installDir: string): Promise<number> => {
    const old = fuseServerPid();
    const { pid, exited, log: takeoverLog } = startTakeOver(installDir);
    await waitUntil(`FUSE server ${pid} took over from ${old}`, async () => {
      const gone = exited();
      if (gone !== undefined) throw new WaitAborted(`the take-over FUSE server ${gone}: ${takeoverLog().slice(-3000)}`);
      return fuseServerPid() === pid && (old === undefined || !alive(old));
    }, 120_000);
    if (old !== undefined) forgetReap(old);
    return pid;
  };
  const kill = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    await proc.stop(signal, 10_000);
    return proc.exited;
  };
  return {
    root: opts.root,
    address: opts.address,
    logPath,
    pid: () => proc.pid,
    running: () => proc.running,
    exited: () => proc.exited,
    kill,
    restart: async () => {
      await kill('SIGTERM');
      proc.respawn();
      await ready();
      trackFuseServer();
    },
    stop: async () => {
      await kill('SIGTERM');
      await killFuseServer('SIGTERM');
      await unmountAllUnder(opts.root);
    },
    log,
    fuseServerPid,
    killFuseServer,
    replaceFuseServer,
    startTakeOver,
  };
}
