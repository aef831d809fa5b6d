/** The TOML for a private containerd that touches nothing outside its own directories. */

export interface ContainerdPaths {
  root: string;
  state: string;
  grpcAddress: string;
  ttrpcAddress: string;
  optDir: string;
  overlayfsRoot: string;
}

/** Plugins that would reach outside the private dirs, or are useless here and slow start-up. */
export const DISABLED_PLUGINS = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.snapshotter.v1.aufs',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
];

const q = (s: string): string => JSON.stringify(s);

/**
 * The part both config versions share: private root, state and sockets, debug logging, no
 * metrics, the proxy snapshotters, and the plugins every test daemon configures the same way.
 */
function sharedToml(version: 2 | 3, paths: ContainerdPaths, disabled: readonly string[], proxies: string): string {
  return `version = ${version}
root = ${q(paths.root)}
state = ${q(paths.state)}
oom_score = 0
disabled_plugins = [${disabled.map(q).join(', ')}]

[grpc]
  address = ${q(paths.grpcAddress)}

[ttrpc]
  address = ${q(paths.ttrpcAddress)}

[debug]
  address = ""
  level = "debug"

[metrics]
  address = ""

${proxies}
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = ${q(paths.optDir)}
  [plugins."io.containerd.snapshotter.v1.overlayfs"]
    root_path = ${q(paths.overlayfsRoot)}
  [plugins."io.containerd.gc.v1.scheduler"]
    startup_delay = "100ms"
`;
}

/** Render config version 2 with the given proxy snapshotters (`name → socket path`). */
export function containerdConfigToml(paths: ContainerdPaths, snapshotters: Record<string, string>): string {
  const proxies = Object.entries(snapshotters)
    .map(([name, address]) => `[proxy_plugins.${q(name)}]\n  type = "snapshot"\n  address = ${q(address)}\n`)
    .join('\n');
  return `${sharedToml(2, paths, DISABLED_PLUGINS, proxies)}  [plugins."io.containerd.runtime.v2.task"]
    platforms = ["linux/amd64"]
`;
}

/** `hosts.toml` for a plain-HTTP loopback registry (ctr's `--hosts-dir` layout). */
export function hostsToml(hostPort: string): string {
  return `server = "http://${hostPort}"

[host."http://${hostPort}"]
  capabilities = ["pull", "resolve", "push"]
  skip_verify = true
`;
}

/** A proxy snapshotter as containerd 2.x registers it (`capabilities`/`exports` are 2.x/1.7.23+). */
export interface ProxySnapshotterConfig {
  address: string;
  /** e.g. `remap-ids`, `rebase`; containerd copies them into the plugin's meta. */
  capabilities?: string[];
  /** e.g. `{ enable_remote_snapshot_annotations: 'true' }` (read by the transfer service's unpacker), `root`. */
  exports?: Record<string, string>;
}

/** CRI (`io.containerd.cri.v1.images` / `.runtime`) settings for a private containerd 2.x. */
export interface CriConfig {
  /** The snapshotter CRI pulls and runs with. */
  snapshotter: string;
  /**
   * false: CRI pulls itself (containerd's Go client with its `cri.*` layer labels) — containerd
   * 2.x falls back to this "local pull" whenever annotations are enabled. true (2.x default): CRI
   * pulls through the transfer service.
   */
  disableSnapshotAnnotations: boolean;
  /** The pod sandbox ("pause") image; must be pullable from a loopback registry. */
  sandboxImage: string;
  /** hosts.toml directory for CRI's own registry resolution. */
  registryConfigPath: string;
  /** Private CNI directories (empty: pods use the host network). */
  cniConfDir: string;
  cniBinDir: string;
  /** runc's state root for CRI's containers (kept under our private state dir). */
  runcRoot: string;
}

export interface ContainerdV3Options {
  snapshotters: Record<string, ProxySnapshotterConfig>;
  /** Snapshotters the transfer service may unpack into (`unpack_config`), besides overlayfs. */
  unpackSnapshotters: string[];
  /** hosts.toml directory the transfer service resolves registries with. */
  registryConfigPath: string;
  /** Enables CRI when given; otherwise every CRI plugin is disabled. */
  cri?: CriConfig;
  /**
   * The transfer service's `max_concurrent_unpacks`: above 1, containerd 2.2+ unpacks layers in
   * parallel for snapshotters that declare `rebase` (Prepare without parent, parent at Commit).
   */
  maxConcurrentUnpacks?: number;
}

/** containerd 2.x plugins that stay off unless CRI is asked for. */
export const CRI_PLUGINS_V2 = [
  'io.containerd.grpc.v1.cri',
  'io.containerd.cri.v1.images',
  'io.containerd.cri.v1.runtime',
  'io.containerd.podsandbox.controller.v1.podsandbox',
  'io.containerd.sandbox.controller.v1.shim',
];

/** containerd 2.x plugins that would reach outside the private dirs or are not built here. */
export const DISABLED_PLUGINS_V2 = [
  'io.containerd.snapshotter.v1.btrfs',
  'io.containerd.snapshotter.v1.zfs',
  'io.containerd.snapshotter.v1.devmapper',
  'io.containerd.tracing.processor.v1.otlp',
  'io.containerd.internal.v1.tracing',
  // NRI listens on /var/run/nri/nri.sock, a machine-wide path.
  'io.containerd.nri.v1.nri',
];

function proxyPluginToml(name: string, p: ProxySnapshotterConfig): string {
  let s = `[proxy_plugins.${q(name)}]\n  type = "snapshot"\n  address = ${q(p.address)}\n`;
  if (p.capabilities) s += `  capabilities = [${p.capabilities.map(q).join(', ')}]\n`;
  if (p.exports && Object.keys(p.exports).length > 0) {
    s += `  exports = { ${Object.entries(p.exports).map(([k, v]) => `${q(k)} = ${q(v)}`).join(', ')} }\n`;
  }
  return s;
}

/** Render config version 3 (containerd 2.x) for a private daemon. */
export function containerdConfigTomlV3(paths: ContainerdPaths, opts: ContainerdV3Options): string {
  const disabled = [...DISABLED_PLUGINS_V2, ...(opts.cri ? [] : CRI_PLUGINS_V2)];
  const proxies = Object.entries(opts.snapshotters).map(([n, p]) => proxyPluginToml(n, p)).join('\n');
  const unpack = ['overlayfs', ...opts.unpackSnapshotters.filter((s) => s !== 'overlayfs')]
    .map((s) => `  [[plugins."io.containerd.transfer.v1.local".unpack_config]]\n    platform = "linux/amd64"\n    snapshotter = ${q(s)}\n`)
    .join('');
  const cri = opts.cri;
  const criToml = cri
    ? `  [plugins."io.containerd.cri.v1.images"]
    snapshotter = ${q(cri.snapshotter)}
    disable_snapshot_annotations = ${cri.disableSnapshotAnnotations}
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = ${q(cri.sandboxImage)}
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = ${q(cri.registryConfigPath)}
  [plugins."io.containerd.cri.v1.runtime"]
    enable_selinux = false
    disable_apparmor = true
    # The test machines lack CAP_SYS_RESOURCE: the sandbox's default oom_score_adj (-998) is
    # refused by the kernel, so keep every container at or above containerd's own score.
    restrict_oom_score_adj = true
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = [${q(cri.cniBinDir)}]
      conf_dir = ${q(cri.cniConfDir)}
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      snapshotter = ${q(cri.snapshotter)}
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        Root = ${q(cri.runcRoot)}
  [plugins."io.containerd.grpc.v1.cri"]
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`
    : '';
  return `${sharedToml(3, paths, disabled, proxies)}  [plugins."io.containerd.transfer.v1.local"]
    config_path = ${q(opts.registryConfigPath)}
${opts.maxConcurrentUnpacks !== undefined ? `    max_concurrent_unpacks = ${opts.maxConcurrentUnpacks}\n` : ''}${unpack}${criToml}`;
}
