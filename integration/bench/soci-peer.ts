/**
 * SOCI (awslabs/soci-snapshotter, the release pinned in integration/go-modules.env) as a lazy-pull
 * peer of the ML-image entry. Its programs live in a module the Go proxy does not serve, so
 * integration/go/socimod runs the same library code: `convert` is `soci convert` (a SOCI index v2:
 * zTOCs of every layer ≥ 10 MiB, the image manifest annotated with the index digest, both in a new
 * OCI index), `serve` is soci-snapshotter-grpc with its default config, and `rpull` is
 * `soci image rpull` (containerd's pull with its snapshot labels, layers mounted lazily).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Stack } from '../harness/stack.js';
import { TEST_NAMESPACE } from '../harness/containerd.js';
import { runCommand } from '../harness/run-command.js';
import type { PushedImage } from '../images/index.js';
import { goModulePins } from '../harness/go-modules.js';
import { GO_BIN } from './proc-util.js';
import { startPeerNode, type PeerNode } from './peer-node.js';

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

/** A node running SOCI's snapshotter. */
export type SociNode = PeerNode;

/**
 * Start SOCI's snapshotter (`socimod serve`), then a containerd that registers it as `soci`: the
 * newest containerd 2.x of go-modules.env, since SOCI needs the namespace of each snapshot call,
 * which containerd 1.6 does not pass to a proxy snapshotter.
 */
export async function startSociNode(stack: Stack, name: string, registryHost: string): Promise<SociNode> {
  return startPeerNode(stack, name, registryHost, {
    kind: 'soci', program: 'socimod', command: socimod(), args: ['serve'], snapshotter: SOCI_SNAPSHOTTER, containerdVersion: goModulePins().containerd2Versions[0],
  });
}

/** `socimod rpull --plain-http REF` on the node (SOCI's `soci image rpull`). */
export async function sociPull(node: SociNode, ref: string): Promise<void> {
  try {
    await runCommand(socimod(), ['rpull', '--address', node.containerd.address, '--namespace', TEST_NAMESPACE, '--plain-http', ref], { timeoutMs: 1_800_000 });
  } catch (err) {
    throw new Error(`SOCI rpull failed; its log: ${node.logTail()}\n${err instanceof Error ? err.message : String(err)}`);
  }
}
