/**
 * The one writer of a test daemon's plugin config: every node of the tests, the benchmarks and the
 * demo gets its TOML from here, so a new config key is added in one place.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  /**
   * `[content_cache] key_file`: the cluster key that signs and verifies ContentCache objects. With
   * Redis and no key file, every node of this process shares `testClusterKeyFile()`.
   */
  keyFile?: string;
  /** `[content_cache] allow_unverified = true` and no key: the CRC-only mode an operator must ask for. */
  allowUnverified?: boolean;
  /** OTLP/HTTP (JSON) traces endpoint; absent or '' → no tracing. */
  tracingEndpoint?: string;
  serviceName?: string;
  sampleRatio?: number;
  /** Prometheus listen address `host:port`; absent or '' → no metrics endpoint. */
  metricsAddress?: string;
  /** `[fuse_server] mode`; absent → the daemon's default (a separate FUSE server). */
  fuseServerMode?: 'separate' | 'in_process';
  /** More keys of `[content_cache]` (one `key = value` per line). */
  contentCacheToml?: string[];
  /** Whole TOML tables appended to the config. */
  extraToml?: string;
}

const str = (v: string): string => JSON.stringify(v);

let sharedKey: string | undefined;

/**
 * The cluster key of every test node started by this process (so nodes sharing a Redis verify each
 * other's objects): a fresh random key, mode 0400, in a temp dir removed when the process exits
 * (kept with CLIP_KEEP_TEMP=1, like the tests' other temp dirs).
 */
export function testClusterKeyFile(): string {
  if (sharedKey) return sharedKey;
  const dir = mkdtempSync(join(tmpdir(), 'clip-test-key-'));
  const path = join(dir, 'cluster.key');
  writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o400 });
  if (!process.env['CLIP_KEEP_TEMP']) process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  sharedKey = path;
  return path;
}

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
    ...contentCacheKey(o, redis.length > 0),
    ...(o.contentCacheToml ?? []),
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

/** The key lines of `[content_cache]`: a Redis node is keyed unless it asks for CRCs only. */
function contentCacheKey(o: DaemonConfig, redis: boolean): string[] {
  if (o.keyFile) return [`key_file = ${str(o.keyFile)}`];
  if (!redis) return [];
  if (o.allowUnverified) return ['allow_unverified = true'];
  return [`key_file = ${str(testClusterKeyFile())}`];
}
