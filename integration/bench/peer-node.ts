/**
 * A lazy-pull peer of the benchmarks (stargz, SOCI): its snapshotter daemon on a socket under the
 * stack, then a containerd that registers it as a proxy snapshotter.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Containerd } from '../harness/containerd.js';
import { ManagedProcess } from '../harness/managed-process.js';
import { mountsUnder } from '../harness/mounts.js';
import type { Stack } from '../harness/stack.js';
import { socketAccepts, waitUntil, WaitAborted } from '../harness/wait.js';

/** A running peer node. */
export interface PeerNode {
  containerd: Containerd;
  root: string;
  /** The tail of the daemon's log, for error messages. */
  logTail(): string;
  pid(): number | undefined;
  /** FUSE mounts under the daemon's root right now. */
  fuseMounts(): number;
  stop(): Promise<void>;
}

/** How to start one peer's daemon; `args` get `--root ROOT --address SOCK --plain-http HOST` appended. */
export interface PeerDaemon {
  /** Names the node's dirs and log (`<name>-<kind>/`, `<program>.log`). */
  kind: string;
  program: string;
  command: string;
  args: string[];
  /** The snapshotter name containerd registers it under. */
  snapshotter: string;
  /** containerd version (default: Debian's 1.6). */
  containerdVersion?: string;
}

/** Start the peer's daemon, wait for its socket, then a containerd that uses it. */
export async function startPeerNode(stack: Stack, name: string, registryHost: string, d: PeerDaemon): Promise<PeerNode> {
  const dir = join(stack.root, `${name}-${d.kind}`);
  const root = join(dir, 'root');
  const address = join(dir, `${d.kind}.sock`);
  mkdirSync(root, { recursive: true });
  const logPath = join(dir, `${d.program}.log`);
  const proc = new ManagedProcess({ command: d.command, args: [...d.args, '--root', root, '--address', address, '--plain-http', registryHost], logPath });
  stack.add(`${d.program} ${name}`, () => proc.stop());
  await waitUntil(`${d.program} at ${address}`, async () => {
    if (!proc.running) throw new WaitAborted(`${d.program} exited: ${readFileSync(logPath, 'utf8').slice(-1000)}`);
    return socketAccepts(address);
  }, 15_000);
  const containerd = await stack.containerd(`${name}-containerd`, { [d.snapshotter]: address }, [registryHost], d.containerdVersion);
  return {
    containerd,
    root,
    logTail: () => readFileSync(logPath, 'utf8').slice(-1500).replace(/\n/g, ' | '),
    pid: () => proc.pid,
    fuseMounts: () => mountsUnder(root).filter((m) => m.fsType.startsWith('fuse')).length,
    // containerd first (it removes the tasks), then the daemon, whose close unmounts its layers.
    stop: async () => {
      await containerd.stop();
      await proc.stop();
    },
  };
}
