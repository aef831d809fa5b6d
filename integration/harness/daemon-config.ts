/**
 * The one writer of a test daemon's plugin config: every node of the tests, the benchmarks and the
 * demo gets its TOML from here, so a new config key is added in one place.
 */
import { TEST_NAMESPACE } from './containerd.js';

/** What a test node's daemon is told; everything left out keeps the daemon's default. */
export interface DaemonConfig {
  containerdAddress: string;
  /** containerd's hosts.toml directory; without one the daemon speaks plain HTTP to every registry. */
  hostsDir?: string;
  /** `[registry] docker_config`: a docker config.json (auths, credHelpers, credsStore). */
  dockerConfig?: string;
  /** `[registry] credential_provider_config` / `_bin_dir`: kubelet credential-provider plugins. */
  credentialProviders?: { configPath: string; binDir: string };
  /** Redis `host:port` list; empty or absent → `[content_cache] backend = "none"`. */
  redisAddresses?: string[];
  /** The addresses are seeds of a Redis Cluster. */
  cluster?: boolean;
  /** `[content_cache] key_file`: the cluster key that signs and verifies ContentCache objects. */
  keyFile?: string;
  /** OTLP/HTTP (JSON) traces endpoint; absent or '' → no tracing. */
  tracingEndpoint?: string;
  serviceName?: string;
  sampleRatio?: number;
  /** Prometheus listen address `host:port`; absent or '' → no metrics endpoint. */
  metricsAddress?: string;
  /** `[fuse_server] mode`; absent → the daemon's default (a separate FUSE server). */
  fuseServerMode?: 'separate' | 'in_process';
  /** Whole TOML tables appended to the config. */
  extraToml?: string;
}

const str = (v: string): string => JSON.stringify(v);

/** The daemon's TOML for one test node. */
export function daemonConfigToml(o: DaemonConfig): string {
  const redis = o.redisAddresses ?? [];
  const lines = [
    `containerd_address = ${str(o.containerdAddress)}`,
    `containerd_namespace = ${str(TEST_NAMESPACE)}`,
    '',
    '[registry]',
    o.hostsDir ? `config_path = ${str(o.hostsDir)}` : 'plain_http = true',
    ...(o.dockerConfig ? [`docker_config = ${str(o.dockerConfig)}`] : []),
    ...(o.credentialProviders
      ? [`credential_provider_config = ${str(o.credentialProviders.configPath)}`, `credential_provider_bin_dir = ${str(o.credentialProviders.binDir)}`]
      : []),
    '',
    '[content_cache]',
    ...(redis.length > 0
      ? ['backend = "redis"', `addresses = ${JSON.stringify(redis)}`, `cluster = ${o.cluster === true}`]
      : ['backend = "none"']),
    ...(o.keyFile ? [`key_file = ${str(o.keyFile)}`] : []),
  ];
  if (o.tracingEndpoint) {
    lines.push('', '[tracing]', `endpoint = ${str(o.tracingEndpoint)}`, 'protocol = "http/json"');
    if (o.serviceName) lines.push(`service_name = ${str(o.serviceName)}`);
    if (o.sampleRatio !== undefined) lines.push(`sample_ratio = ${o.sampleRatio}`);
  }
  if (o.metricsAddress) lines.push('', '[metrics]', `address = ${str(o.metricsAddress)}`);
  if (o.fuseServerMode) lines.push('', '[fuse_server]', `mode = ${str(o.fuseServerMode)}`);
  return `${lines.join('\n')}\n${o.extraToml ?? ''}`;
}
