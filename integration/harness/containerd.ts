/**
 * A private containerd with its own root, state and sockets, plus a `ctr` bound to it: Debian's
 * 1.6 (config version 2, the default) or a containerd 2.x built from Go modules (config version 3,
 * optionally with CRI and a `crictl` bound to it).
 */
import { existsSync, mkdirSync, writeFileSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { containerdConfigToml, containerdConfigTomlV3, hostsToml, type CriConfig, type ProxySnapshotterConfig } from './containerd-config.js';
import { containerd2BinDir, crictlPath, requireGoModuleBinary } from './go-modules.js';
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
  /**
   * A containerd 2.x version from integration/go-modules.env (e.g. `v2.4.2`), built by
   * build-go-modules.sh. Absent: Debian's containerd 1.6 from PATH.
   */
  version?: string;
  /**
   * containerd 2.x only: proxy snapshotter `capabilities`/`exports` by name (the address comes
   * from `snapshotters`). By default every proxy snapshotter is also an unpack target of the
   * transfer service.
   */
  proxyOptions?: Record<string, Omit<ProxySnapshotterConfig, 'address'>>;
  /** containerd 2.x only: enable CRI with these settings (the directories are made private). */
  cri?: Pick<CriConfig, 'snapshotter' | 'disableSnapshotAnnotations' | 'sandboxImage'>;
  /** containerd 2.x only: the transfer service's `max_concurrent_unpacks` (parallel unpack when > 1). */
  maxConcurrentUnpacks?: number;
}

export interface Containerd {
  address: string;
  root: string;
  state: string;
  logPath: string;
  hostsDir: string;
  overlayfsRoot: string;
  /** `1.6` (Debian's) or the 2.x version it was started as (`v2.4.2`). */
  version: string;
  /** The ctr binary matching this daemon. */
  ctrPath: string;
  /** `ctr --address … --namespace clip-test ARGS`; throws on failure unless `allowFailure`. */
  ctr(args: string[], opts?: RunOptions): Promise<CommandResult>;
  /** `ctr` in another namespace (CRI keeps its images and containers in `k8s.io`). */
  ctrIn(namespace: string, args: string[], opts?: RunOptions): Promise<CommandResult>;
  /** `crictl` against this daemon's CRI endpoint; throws unless started with `cri`. */
  crictl(args: string[], opts?: RunOptions): Promise<CommandResult>;
  /** Args for `ctr run` that keep runc's state under our own state dir. */
  runcArgs(): string[];
  /**
   * Wait (bounded) until a Prepare through containerd reaches proxy snapshotter `name`. containerd
   * dials a proxy plugin on its own schedule and re-dials with backoff, failing RPCs meanwhile, so
   * a snapshotter started (or restarted) after containerd is not yet usable when its socket is.
   * (`ctr snapshots ls` proves nothing: containerd answers List from its own metadata.)
   */
  waitForSnapshotter(name: string): Promise<void>;
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
  const v2 = opts.version !== undefined;
  let command = 'containerd';
  let ctrPath = 'ctr';
  let env: NodeJS.ProcessEnv | undefined;
  if (v2) {
    const bin = containerd2BinDir(opts.version!);
    command = requireGoModuleBinary(join(bin, 'containerd'));
    ctrPath = requireGoModuleBinary(join(bin, 'ctr'));
    requireGoModuleBinary(join(bin, 'containerd-shim-runc-v2'));
    // containerd finds its shim on PATH: the one built with this version comes first.
    env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const cniConfDir = join(opts.dir, 'cni', 'net.d');
    const cniBinDir = join(opts.dir, 'cni', 'bin');
    if (opts.cri) for (const d of [cniConfDir, cniBinDir]) mkdirSync(d, { recursive: true });
    const snapshotters = Object.fromEntries(Object.entries(opts.snapshotters ?? {}).map(([n, address]) => [n, { address, ...(opts.proxyOptions?.[n] ?? {}) }]));
    writeFileSync(cfgPath, containerdConfigTomlV3(paths, {
      snapshotters,
      unpackSnapshotters: Object.keys(snapshotters),
      registryConfigPath: hostsDir,
      cri: opts.cri && { ...opts.cri, registryConfigPath: hostsDir, cniConfDir, cniBinDir, runcRoot: join(paths.state, 'runc') },
      ...(opts.maxConcurrentUnpacks !== undefined ? { maxConcurrentUnpacks: opts.maxConcurrentUnpacks } : {}),
    }));
  } else {
    if (opts.cri || opts.proxyOptions || opts.maxConcurrentUnpacks !== undefined) throw new Error('cri, proxyOptions and maxConcurrentUnpacks need a containerd 2.x version (ContainerdOptions.version)');
    writeFileSync(cfgPath, containerdConfigToml(paths, opts.snapshotters ?? {}));
  }
  const logPath = join(opts.dir, 'containerd.log');
  const proc = new ManagedProcess({ command, args: ['--config', cfgPath], logPath, env });
  const ctrIn = (namespace: string, args: string[], runOpts: RunOptions = {}): Promise<CommandResult> =>
    runCommand(ctrPath, ['--address', paths.grpcAddress, '--namespace', namespace, ...args], { timeoutMs: 120_000, ...runOpts });
  const ctr = (args: string[], runOpts: RunOptions = {}): Promise<CommandResult> => ctrIn(TEST_NAMESPACE, args, runOpts);
  const crictl = (args: string[], runOpts: RunOptions = {}): Promise<CommandResult> => {
    if (!opts.cri) throw new Error('crictl needs a containerd started with cri');
    const endpoint = `unix://${paths.grpcAddress}`;
    return runCommand(requireGoModuleBinary(crictlPath()), ['--runtime-endpoint', endpoint, '--image-endpoint', endpoint, '--timeout', '120s', ...args], { timeoutMs: 180_000, ...runOpts });
  };
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
  let probes = 0;
  const waitForSnapshotter = (name: string): Promise<void> =>
    waitUntil(`containerd reaching snapshotter ${name}`, async () => {
      const key = `harness-probe-${process.pid}-${++probes}`;
      if ((await ctr(['snapshots', '--snapshotter', name, 'prepare', key], { allowFailure: true, timeoutMs: 30_000 })).code !== 0) return false;
      await ctr(['snapshots', '--snapshotter', name, 'rm', key]);
      return true;
    }, 30_000, 250);
  return {
    address: paths.grpcAddress,
    root: paths.root,
    state: paths.state,
    logPath,
    hostsDir,
    overlayfsRoot: paths.overlayfsRoot,
    version: opts.version ?? '1.6',
    ctrPath,
    ctr,
    ctrIn,
    crictl,
    runcArgs: () => ['--runc-root', join(paths.state, 'runc')],
    waitForSnapshotter,
    restart: async () => {
      await stop();
      proc.respawn();
      await ready();
    },
    stop: async () => {
      // Without crictl (not built) nothing could have created pods.
      if (opts.cri && existsSync(crictlPath())) await removeAllPods(crictl, proc.running);
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

// CRI's sandboxes and containers live in the k8s.io namespace; stop and remove them through CRI.
async function removeAllPods(crictl: Containerd['crictl'], running: boolean): Promise<void> {
  if (!running) return;
  const res = await crictl(['pods', '-q'], { allowFailure: true, timeoutMs: 30_000 });
  for (const id of res.stdout.split('\n').filter(Boolean)) {
    await crictl(['stopp', id], { allowFailure: true, timeoutMs: 60_000 });
    await crictl(['rmp', '-f', id], { allowFailure: true, timeoutMs: 60_000 });
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
