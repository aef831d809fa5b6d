/**
 * SOCI (awslabs/soci-snapshotter, the release pinned in integration/go-modules.env) as a lazy-pull
 * peer of the ML-image entry. Its programs live in a module the Go proxy does not serve, so
 * integration/go/socimod runs the same library code: `convert` is `soci convert` (a SOCI index v2:
 * zTOCs of every layer ≥ 10 MiB, the image manifest annotated with the index digest, both in a new
 * OCI index), `serve` is soci-snapshotter-grpc with its default config, and `rpull` is
 * `soci image rpull` (containerd's pull with its snapshot labels, layers mounted lazily).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Stack } from '../harness/stack.js';
import { TEST_NAMESPACE, type Containerd } from '../harness/containerd.js';
import { ManagedProcess } from '../harness/managed-process.js';
import { mountsUnder } from '../harness/mounts.js';
import { runCommand } from '../harness/run-command.js';
import { socketAccepts, waitUntil, WaitAborted } from '../harness/wait.js';
import type { PushedImage } from '../images/index.js';
import { goModulePins } from '../harness/go-modules.js';
import { GO_BIN } from './proc-util.js';

export const SOCI_SNAPSHOTTER = 'soci';

const socimod = (): string => {
  const bin = join(GO_BIN, 'socimod');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'make go-tools'`);
  return bin;
};

/** Whether `.work/bin/socimod` is built. */
export const haveSoci = (): boolean => existsSync(join(GO_BIN, 'socimod'));

/** The SOCI-converted copy of an image in the same registry. */
export interface SociImage {
  ref: string;
  /** The converted image's OCI index. */
  indexDigest: string;
}

/**
 * Pull `image` into a scratch containerd, convert it with SOCI's IndexBuilder (`socimod convert`,
 * SOCI's default span and minimum layer sizes) and push the result as `TAG-soci`.
 */
export async function convertToSoci(stack: Stack, registryHost: string, image: PushedImage): Promise<SociImage> {
  const bin = socimod();
  const c = await stack.containerd('soci-convert', {}, [registryHost]);
  try {
    const ref = `${image.ref}-soci`;
    await c.ctr(['images', 'pull', '--plain-http', image.ref], { timeoutMs: 1_800_000 });
    const out = await runCommand(bin, ['convert', '--address', c.address, '--namespace', TEST_NAMESPACE, '--root', join(stack.root, 'soci-convert-db'), image.ref, ref], { timeoutMs: 1_800_000 });
    const indexDigest = out.stdout.trim().split('\n').at(-1) ?? '';
    if (!/^sha256:[0-9a-f]{64}$/.test(indexDigest)) throw new Error(`socimod convert printed no digest: ${out.stdout.slice(-300)} ${out.stderr.slice(-300)}`);
    await c.ctr(['images', 'push', '--plain-http', ref], { timeoutMs: 1_800_000 });
    return { ref, indexDigest };
  } finally {
    await c.stop();
  }
}

export interface SociNode {
  containerd: Containerd;
  root: string;
  logTail(): string;
  pid(): number | undefined;
  /** FUSE mounts under the daemon's root right now. */
  fuseMounts(): number;
  stop(): Promise<void>;
}

/**
 * Start SOCI's snapshotter (`socimod serve`), then a containerd that registers it as `soci`: the
 * newest containerd 2.x of go-modules.env, since SOCI needs the namespace of each snapshot call,
 * which containerd 1.6 does not pass to a proxy snapshotter.
 */
export async function startSociNode(stack: Stack, name: string, registryHost: string): Promise<SociNode> {
  const dir = join(stack.root, `${name}-soci`);
  const root = join(dir, 'root');
  const address = join(dir, 'soci.sock');
  mkdirSync(root, { recursive: true });
  const logPath = join(dir, 'socimod.log');
  const proc = new ManagedProcess({ command: socimod(), args: ['serve', '--root', root, '--address', address, '--plain-http', registryHost], logPath });
  stack.add(`socimod ${name}`, () => proc.stop());
  await waitUntil(`socimod at ${address}`, async () => {
    if (!proc.running) throw new WaitAborted(`socimod exited: ${readFileSync(logPath, 'utf8').slice(-1000)}`);
    return socketAccepts(address);
  }, 15_000);
  const containerd = await stack.containerd(`${name}-containerd`, { [SOCI_SNAPSHOTTER]: address }, [registryHost], goModulePins().containerd2Versions[0]);
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

/** `socimod rpull --plain-http REF` on the node (SOCI's `soci image rpull`). */
export async function sociPull(node: SociNode, ref: string): Promise<void> {
  try {
    await runCommand(socimod(), ['rpull', '--address', node.containerd.address, '--namespace', TEST_NAMESPACE, '--plain-http', ref], { timeoutMs: 1_800_000 });
  } catch (err) {
    throw new Error(`SOCI rpull failed; its log: ${node.logTail()}\n${err instanceof Error ? err.message : String(err)}`);
  }
}
