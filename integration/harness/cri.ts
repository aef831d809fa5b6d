/**
 * The node of the CRI credential tests: containerd 2.x with its CRI plugin pulling into clip, clip's
 * daemon serving its CRI image-service proxy (`[cri] enabled`), a sandbox image on an open
 * registry, and crictl bound to containerd's CRI with image calls sent through the proxy (what a
 * kubelet started with `--image-service-endpoint` does) or straight to containerd (a kubelet
 * that does not know the proxy: its per-pull credentials never reach clip). Plus `indexWithCredentials`,
 * the CI step that pushes an image's index artifact to a registry that requires credentials.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, pauseImageSpec, pushImage, type PushedImage } from '../images/index.js';
import type { Containerd } from './containerd.js';
import { daemonConfigToml, type DaemonConfig } from './daemon-config.js';
import { crictlPath, goModulePins, requireGoModuleBinary } from './go-modules.js';
import type { Harness } from './harness.js';
import type { Registry } from './registry.js';
import { runCommand, type CommandResult } from './run-command.js';
import { runClipCli, type Snapshotter } from './snapshotter.js';

/** How a CRI node is set up; everything left out keeps the defaults of the daemon and containerd. */
export interface CriNodeOptions {
  /** Registries reached over plain HTTP (hosts.toml written for containerd and clip). */
  plainHttpRegistries?: string[];
  /** More hosts.toml files for the node's hosts dir (`host:port` → text), e.g. a TLS registry's `ca` and `client`. */
  hostsToml?: Record<string, string>;
  /** The daemon's config besides the node's addresses and the `[cri]` table. */
  daemon?: Omit<DaemonConfig, 'containerdAddress' | 'hostsDir'>;
  /** `[cri] credential_ttl_s` (default: the daemon's). */
  credentialTtlS?: number;
  /** No background completion (`range_completion_bytes_per_sec = 0`): a layer is fetched only when read. */
  fetchOnlyWhenRead?: boolean;
  /** The daemon's environment, e.g. a PATH that finds a docker credential helper. */
  env?: NodeJS.ProcessEnv;
  /** containerd's directory under the harness root (default `c-cri`). */
  dirName?: string;
}

export interface CriPullOptions {
  /** `--creds user:password`: the kubelet's per-pull credentials (an image pull secret). */
  creds?: { username: string; password: string };
  /** Through clip's proxy (default), or straight to containerd's CRI. */
  viaProxy?: boolean;
  allowFailure?: boolean;
}

/** A running CRI node. */
export interface CriNode {
  c: Containerd;
  snap: Snapshotter;
  /** The registry of the sandbox image (anonymous). */
  open: Registry;
  pause: PushedImage;
  /** clip's CRI image-service socket. */
  proxySocket: string;
  /** The daemon's config file (also what `clip-snapshotter pull --config` reads on this node). */
  daemonConfigPath: string;
  /** containerd's hosts.toml directory, which clip reads too. */
  hostsDir: string;
  /** `crictl ARGS` with containerd as runtime endpoint and the proxy (or containerd) as image endpoint. */
  crictl(args: string[], opts?: { viaProxy?: boolean; allowFailure?: boolean }): Promise<CommandResult>;
  /** `crictl pull [--creds …] REF`. */
  pull(ref: string, opts?: CriPullOptions): Promise<CommandResult>;
}

/** Start clip with its CRI proxy and containerd 2.x (the newest pinned version) with CRI on it. */
export async function startCriNode(h: Harness, opts: CriNodeOptions = {}): Promise<CriNode> {
  const version = goModulePins().containerd2Versions[0];
  if (!version) throw new Error('integration/go-modules.env lists no containerd 2.x version');
  const dirName = opts.dirName ?? 'c-cri';
  const open = await h.startRegistry({ name: `${dirName}-open` });
  const pause = await pushImage(await buildImage(pauseImageSpec(`${dirName}-pause`)), { hostPort: open.hostPort });
  const containerdDir = join(h.root, dirName);
  const containerdSock = join(containerdDir, 'containerd.sock');
  const hostsDir = join(containerdDir, 'hosts');
  for (const [hostPort, text] of Object.entries(opts.hostsToml ?? {})) {
    mkdirSync(join(hostsDir, hostPort), { recursive: true });
    writeFileSync(join(hostsDir, hostPort, 'hosts.toml'), text);
  }
  const proxySocket = join(h.root, 'clip', 'cri-image.sock');
  const cri = ['', '[cri]', 'enabled = true', `address = ${JSON.stringify(proxySocket)}`, `containerd_address = ${JSON.stringify(containerdSock)}`,
    ...(opts.credentialTtlS !== undefined ? [`credential_ttl_s = ${opts.credentialTtlS}`] : [])];
  const completion = opts.fetchOnlyWhenRead ? ['', '[index]', 'range_completion_bytes_per_sec = 0'] : [];
  const daemonConfigPath = join(h.root, 'clip.toml');
  writeFileSync(daemonConfigPath, daemonConfigToml({
    ...opts.daemon,
    containerdAddress: containerdSock,
    hostsDir,
    extraToml: `${[...completion, ...cri].join('\n')}\n${opts.daemon?.extraToml ?? ''}`,
  }));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', daemonConfigPath], ...(opts.env ? { env: opts.env } : {}) });
  const c = await h.startContainerd({
    dirName,
    version,
    snapshotters: { clip: snap.address },
    plainHttpRegistries: [open.hostPort, ...(opts.plainHttpRegistries ?? [])],
    proxyOptions: { clip: { exports: { enable_remote_snapshot_annotations: 'true' } } },
    cri: { snapshotter: 'clip', disableSnapshotAnnotations: true, sandboxImage: pause.ref },
  });
  if (c.address !== containerdSock || c.hostsDir !== hostsDir) throw new Error(`containerd started at ${c.address} (hosts ${c.hostsDir}), not where clip's config points`);
  await c.waitForSnapshotter('clip');
  const crictl = requireGoModuleBinary(crictlPath());
  const run = (args: string[], { viaProxy = true, allowFailure = false } = {}): Promise<CommandResult> =>
    runCommand(crictl, ['--runtime-endpoint', `unix://${c.address}`, '--image-endpoint', `unix://${viaProxy ? proxySocket : c.address}`, '--timeout', '120s', ...args], { timeoutMs: 180_000, allowFailure });
  return {
    c, snap, open, pause, proxySocket, daemonConfigPath, hostsDir,
    crictl: run,
    pull: (ref, { creds, viaProxy = true, allowFailure = false } = {}) =>
      run(['pull', ...(creds ? ['--creds', `${creds.username}:${creds.password}`] : []), ref], { viaProxy, allowFailure }),
  };
}

let indexSeq = 0;

/**
 * `clip-snapshotter index REF` with credentials only this command sees (a CI job's docker
 * config.json `auths`); `hostsDir` for a TLS registry (its CA, a client certificate), else plain HTTP.
 */
export async function indexWithCredentials(h: Harness, ref: string, creds: { username: string; password: string }, hostsDir?: string): Promise<CommandResult> {
  const dir = join(h.root, `ci-${++indexSeq}`);
  mkdirSync(dir, { recursive: true });
  const registry = ref.slice(0, ref.indexOf('/'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [registry]: { auth: Buffer.from(`${creds.username}:${creds.password}`).toString('base64') } } }));
  const registryToml = hostsDir ? `config_path = ${JSON.stringify(hostsDir)}` : 'plain_http = true';
  writeFileSync(join(dir, 'ci.toml'), `[registry]\n${registryToml}\ndocker_config = ${JSON.stringify(join(dir, 'config.json'))}\n`);
  return runClipCli(['index', ref, ...(hostsDir ? [] : ['--plain-http']), '--config', join(dir, 'ci.toml')], { allowFailure: true, timeoutMs: 180_000 });
}
