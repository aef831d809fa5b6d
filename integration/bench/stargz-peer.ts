/**
 * stargz-snapshotter as the lazy-pull peer of the cold-start benchmark: the benchmark image converted
 * to eStargz with `ctr-remote image convert --estargz --oci` and pushed next to the original, and a
 * node whose containerd has stargzref (stargz's snapshotter, built from Debian's library) as its
 * `stargz` proxy plugin, pulled with `ctr-remote images rpull` (which sets the stargz layer labels).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Stack } from '../harness/stack.js';
import { TEST_NAMESPACE, type Containerd } from '../harness/containerd.js';
import { runCommand, type CommandResult } from '../harness/run-command.js';
import type { PushedImage } from '../images/index.js';
import { GO_BIN } from './proc-util.js';
import { startPeerNode, type PeerNode } from './peer-node.js';

export const STARGZ_SNAPSHOTTER = 'stargz';

/** The eStargz copy of an image in the same registry. */
export interface EstargzImage {
  ref: string;
  manifestDigest: string;
  layers: Array<{ digest: string; size: number }>;
}

/** A node running stargz's snapshotter. */
export type StargzNode = PeerNode;

const tool = (name: string): string => {
  const bin = join(GO_BIN, name);
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run 'make go-tools'`);
  return bin;
};

/**
 * `ctr-remote images rpull --plain-http --snapshotter SN REF`: containerd's Go client pull + unpack
 * with stargz-style remote-snapshot labels (the path CRI takes), the same client for every lazy
 * snapshotter the benchmark compares.
 */
export async function rpull(c: Containerd, snapshotter: string, ref: string): Promise<void> {
  await ctrRemote(c, ['images', 'rpull', '--plain-http', '--snapshotter', snapshotter, ref]);
}

/** Whether `ctr-remote` is built. */
export const haveCtrRemote = (): boolean => existsSync(join(GO_BIN, 'ctr-remote'));

/** `ctr-remote --address … --namespace clip-test ARGS` against `c`. */
function ctrRemote(c: Containerd, args: string[], timeoutMs = 900_000): Promise<CommandResult> {
  return runCommand(tool('ctr-remote'), ['--address', c.address, '--namespace', TEST_NAMESPACE, ...args], { timeoutMs });
}

/**
 * Pull `image` into a scratch containerd, convert it to eStargz (plain `--estargz`, no `optimize`
 * prioritisation: no prefetch landmark) and push it as `TAG-esgz`; returns its manifest's layers.
 */
export async function convertToEstargz(stack: Stack, registryHost: string, image: PushedImage): Promise<EstargzImage> {
  // Both binaries are checked here so a node without them skips the peer instead of failing mid-run.
  tool('stargzref');
  tool('ctr-remote');
  const c = await stack.containerd('esgz-convert', {}, [registryHost]);
  try {
    const ref = `${image.ref}-esgz`;
    await c.ctr(['images', 'pull', '--plain-http', image.ref], { timeoutMs: 900_000 });
    await ctrRemote(c, ['images', 'convert', '--estargz', '--oci', image.ref, ref]);
    await c.ctr(['images', 'push', '--plain-http', ref], { timeoutMs: 900_000 });
    const list = await c.ctr(['images', 'ls']);
    const row = list.stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[0] === ref);
    const manifestDigest = row?.find((f) => f.startsWith('sha256:'));
    if (!manifestDigest) throw new Error(`converted image ${ref} not in \`ctr images ls\`:\n${list.stdout}`);
    const manifest = JSON.parse((await c.ctr(['content', 'get', manifestDigest])).stdout) as { mediaType?: string; layers?: Array<{ digest: string; size: number }> };
    if (!manifest.layers) throw new Error(`${ref}: ${manifestDigest} is not an image manifest (${manifest.mediaType ?? 'no mediaType'})`);
    return { ref, manifestDigest, layers: manifest.layers.map((l) => ({ digest: l.digest, size: l.size })) };
  } finally {
    await c.stop();
  }
}

/** Whether `.work/bin/stargzmod` (the pinned stargz-snapshotter release, built by build-go-modules.sh) is built. */
export const haveStargzRelease = (): boolean => existsSync(join(GO_BIN, 'stargzmod'));

/**
 * Start stargz's snapshotter — `stargzref` (Debian's 0.12 library) or `stargzmod` (the release pinned
 * in go-modules.env); both take the same flags — then a containerd that registers it as `stargz`.
 */
export async function startStargzNode(stack: Stack, name: string, registryHost: string, program: 'stargzref' | 'stargzmod' = 'stargzref'): Promise<StargzNode> {
  return startPeerNode(stack, name, registryHost, { kind: 'stargz', program, command: tool(program), args: [], snapshotter: STARGZ_SNAPSHOTTER });
}

/** `ctr-remote images rpull --plain-http --snapshotter stargz REF` on the node. */
export async function stargzPull(node: StargzNode, ref: string): Promise<void> {
  try {
    await ctrRemote(node.containerd, ['images', 'rpull', '--plain-http', '--snapshotter', STARGZ_SNAPSHOTTER, ref]);
  } catch (err) {
    throw new Error(`rpull on stargzref failed; its log: ${node.logTail()}\n${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Snapshots of the node's stargz daemon that are FUSE-mounted remote layers. */
export async function stargzRemoteSnapshots(node: StargzNode): Promise<number> {
  const res = await node.containerd.ctr(['snapshots', '--snapshotter', STARGZ_SNAPSHOTTER, 'ls'], { allowFailure: true });
  let n = 0;
  for (const key of res.stdout.split('\n').slice(1).map((l) => l.split(/\s+/)[0]).filter(Boolean)) {
    const info = await node.containerd.ctr(['snapshots', '--snapshotter', STARGZ_SNAPSHOTTER, 'info', key as string], { allowFailure: true });
    if (info.stdout.includes('containerd.io/snapshot/remote')) n++;
  }
  return n;
}
