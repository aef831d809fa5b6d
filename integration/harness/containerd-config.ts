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

/** Render config version 2 with the given proxy snapshotters (`name → socket path`). */
export function containerdConfigToml(paths: ContainerdPaths, snapshotters: Record<string, string>): string {
  const proxies = Object.entries(snapshotters)
    .map(([name, address]) => `[proxy_plugins.${q(name)}]\n  type = "snapshot"\n  address = ${q(address)}\n`)
    .join('\n');
  return `version = 2
root = ${q(paths.root)}
state = ${q(paths.state)}
oom_score = 0
disabled_plugins = [${DISABLED_PLUGINS.map(q).join(', ')}]

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
  [plugins."io.containerd.runtime.v2.task"]
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
