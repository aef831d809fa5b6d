/** A private containerd 1.6 with its own root, state and sockets, plus a `ctr` bound to it. */
import { mkdirSync, writeFileSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { containerdConfigToml, hostsToml } from './containerd-config.js';
import { ManagedProcess } from './managed-process.js';
import { unmountAllUnder } from './mounts.js';
import { runCommand, type CommandResult, type RunOptions } from './run-command.js';
import { waitUntil, WaitAborted } from './wait.js';

export const TEST_NAMESPACE = 'clip-test';

export interface ContainerdOptions {
  /** Directory for this containerd's root, state, sockets and log. */
  dir: string;
  /** Proxy snapshotters to register: name → unix socket path. */
  snapshotters?: Record<string, string>;
  /** Registries (`host:port`) reachable over plain HTTP; written as ctr `--hosts-dir` entries. */
  plainHttpRegistries?: string[];
}

export interface Containerd {
  address: string;
  root: string;
  state: string;
  logPath: string;
  hostsDir: string;
  overlayfsRoot: string;
  /** `ctr --address … --namespace clip-test ARGS`; throws on failure unless `allowFailure`. */
  ctr(args: string[], opts?: RunOptions): Promise<CommandResult>;
  /** Args for `ctr run` that keep runc's state under our own state dir. */
  runcArgs(): string[];
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Start containerd and wait until `ctr version` answers. */
export async function startContainerd(opts: ContainerdOptions): Promise<Containerd> {
  const paths = {
    root: join(opts.dir, 'root'),
    state: join(opts.dir, 'state'),
    grpcAddress: join(opts.dir, 'containerd.sock'),
    ttrpcAddress: join(opts.dir, 'containerd.sock.ttrpc'),
    optDir: join(opts.dir, 'opt'),
    overlayfsRoot: join(opts.dir, 'root', 'overlayfs'),
  };
  const hostsDir = join(opts.dir, 'hosts');
  for (const d of [paths.root, paths.state, paths.optDir, hostsDir]) mkdirSync(d, { recursive: true });
  for (const hp of opts.plainHttpRegistries ?? []) {
    mkdirSync(join(hostsDir, hp), { recursive: true });
    writeFileSync(join(hostsDir, hp, 'hosts.toml'), hostsToml(hp));
  }
  const cfgPath = join(opts.dir, 'config.toml');
  writeFileSync(cfgPath, containerdConfigToml(paths, opts.snapshotters ?? {}));
  const logPath = join(opts.dir, 'containerd.log');
  const proc = new ManagedProcess({ command: 'containerd', args: ['--config', cfgPath], logPath });
  const ctr = (args: string[], runOpts: RunOptions = {}): Promise<CommandResult> =>
    runCommand('ctr', ['--address', paths.grpcAddress, '--namespace', TEST_NAMESPACE, ...args], { timeoutMs: 120_000, ...runOpts });
  const ready = async (): Promise<void> => {
    await waitUntil(`containerd at ${paths.grpcAddress} (log ${logPath})`, async () => {
      if (!proc.running) throw new WaitAborted(`containerd exited: ${readFileSync(logPath, 'utf8').slice(-2000)}`);
      return (await ctr(['version'], { allowFailure: true, timeoutMs: 5000 })).code === 0;
    }, 30_000, 200);
  };
  await ready();
  const stop = async (): Promise<void> => {
    await proc.stop('SIGTERM', 15_000);
  };
  return {
    address: paths.grpcAddress,
    root: paths.root,
    state: paths.state,
    logPath,
    hostsDir,
    overlayfsRoot: paths.overlayfsRoot,
    ctr,
    runcArgs: () => ['--runc-root', join(paths.state, 'runc')],
    restart: async () => {
      await stop();
      proc.respawn();
      await ready();
    },
    stop: async () => {
      await removeAllTasks(ctr, proc.running);
      await stop();
      killShimsOf(paths.grpcAddress);
      removeEmptyNamespaceCgroups();
      await unmountAllUnder(paths.state);
      await unmountAllUnder(paths.root);
    },
  };
}

// Tasks outlive containerd in their shims; kill them while containerd can still do it properly.
async function removeAllTasks(ctr: Containerd['ctr'], running: boolean): Promise<void> {
  if (!running) return;
  const res = await ctr(['tasks', 'ls', '-q'], { allowFailure: true, timeoutMs: 10_000 });
  for (const id of res.stdout.split('\n').filter(Boolean)) {
    await ctr(['tasks', 'kill', '-s', 'SIGKILL', id], { allowFailure: true, timeoutMs: 10_000 });
    await ctr(['tasks', 'rm', '-f', id], { allowFailure: true, timeoutMs: 10_000 });
  }
}

/** runc leaves the `/clip-test` parent cgroup behind in every v1 hierarchy; rmdir only succeeds once it is empty. */
export function removeEmptyNamespaceCgroups(): void {
  let hierarchies: string[];
  try {
    hierarchies = readdirSync('/sys/fs/cgroup');
  } catch {
    return;
  }
  for (const h of ['', ...hierarchies]) {
    try {
      rmdirSync(join('/sys/fs/cgroup', h, TEST_NAMESPACE));
    } catch {
      // absent, or still used by another test's containers
    }
  }
}

/** SIGKILL shims started for this containerd; they are identified by its unique socket path in their argv. */
export function killShimsOf(address: string): number[] {
  const killed: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.includes('containerd-shim')) continue;
    const i = argv.indexOf('-address');
    if (i >= 0 && argv[i + 1] === address) {
      try {
        process.kill(Number(pid), 'SIGKILL');
        killed.push(Number(pid));
      } catch {
        // raced with its exit
      }
    }
  }
  return killed;
}
