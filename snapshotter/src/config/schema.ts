/**
 * The plugin config's schema: every TOML key, its TypeScript name, type, default and validation,
 * declared once. Nothing else in the daemon reads TOML.
 */

/** The kinds of value a key may hold. */
export type FieldType = 'string' | 'boolean' | 'integer' | 'number' | 'string[]';

/** One key of a section. */
export interface FieldSpec {
  readonly toml: string;
  readonly name: string;
  readonly type: FieldType;
  readonly default: unknown;
  /** Returns a complaint about a well-typed but unacceptable value. */
  readonly check?: (value: never) => string | undefined;
}

/** A TOML table (or the top level, with `toml` = ''). */
export interface SectionSpec {
  readonly toml: string;
  readonly name: string;
  readonly fields: readonly FieldSpec[];
}

const oneOf =
  (...allowed: string[]) =>
  (v: string): string | undefined =>
    allowed.includes(v) ? undefined : `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`;
const absolutePath = (v: string): string | undefined => (v.startsWith('/') ? undefined : 'must be an absolute path');
const optionalAbsolutePath = (v: string): string | undefined => (v === '' ? undefined : absolutePath(v));
const nonNegative = (v: number): string | undefined => (v >= 0 ? undefined : 'must not be negative');
const positive = (v: number): string | undefined => (v > 0 ? undefined : 'must be greater than zero');
const ratio = (v: number): string | undefined => (v >= 0 && v <= 1 ? undefined : 'must be between 0 and 1');
/** The native addon inflates at most 1 GiB per span; below 64 KiB no real table fits. */
const spanBound = (v: number): string | undefined =>
  v >= 64 * 1024 && v <= 1024 * 1024 * 1024 ? undefined : 'must be between 65536 and 1073741824';
const hostPort = (v: string): string | undefined =>
  v === '' || /^[^\s:]*:\d{1,5}$/.test(v) ? undefined : 'must be "host:port" (or empty to disable)';
const hostPorts = (v: string[]): string | undefined => v.map(hostPort).find((m) => m !== undefined);

const field = <T>(
  toml: string,
  name: string,
  type: FieldType,
  dflt: T,
  check?: (value: never) => string | undefined,
): FieldSpec => ({ toml, name, type, default: dflt, ...(check ? { check } : {}) });

/** Every section and key the daemon understands. */
export const SCHEMA: readonly SectionSpec[] = [
  {
    toml: '',
    name: '',
    fields: [
      field('root', 'root', 'string', '/var/lib/clip-snapshotter', absolutePath),
      field('address', 'address', 'string', '/run/clip-snapshotter/clip.sock', absolutePath),
      field('status_address', 'statusAddress', 'string', '', optionalAbsolutePath),
      field('log_level', 'logLevel', 'string', 'info', oneOf('trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent')),
      field('containerd_address', 'containerdAddress', 'string', '/run/containerd/containerd.sock', absolutePath),
      field('containerd_namespace', 'containerdNamespace', 'string', 'default'),
    ],
  },
  {
    toml: 'registry',
    name: 'registry',
    fields: [
      field('config_path', 'configPath', 'string', '', optionalAbsolutePath),
      field('docker_config', 'dockerConfig', 'string', '', optionalAbsolutePath),
      field('plain_http', 'plainHttp', 'boolean', false),
      field('platform', 'platform', 'string', 'linux/amd64'),
      field('timeout_ms', 'timeoutMs', 'integer', 30_000, positive),
      field('max_retries', 'maxRetries', 'integer', 3, nonNegative),
      // Kubelet credential-provider plugins (the kubelet's --image-credential-provider-config/-bin-dir).
      field('credential_provider_config', 'credentialProviderConfig', 'string', '', optionalAbsolutePath),
      field('credential_provider_bin_dir', 'credentialProviderBinDir', 'string', '', optionalAbsolutePath),
      field('credential_plugin_timeout_ms', 'credentialPluginTimeoutMs', 'integer', 10_000, positive),
    ],
  },
  {
    toml: 'index',
    name: 'index',
    fields: [
      field('build_missing', 'buildMissing', 'boolean', true),
      // Indexes not built here (ContentCache, registry artifacts): used at all, and checked against the completed layer.
      field('accept_foreign_indexes', 'acceptForeignIndexes', 'boolean', true),
      field('check_foreign_indexes', 'checkForeignIndexes', 'boolean', true),
      field('gzip_checkpoints', 'gzipCheckpoints', 'boolean', true),
      field('zstd_frame_tables', 'zstdFrameTables', 'boolean', true),
      field('checkpoint_span_bytes', 'checkpointSpanBytes', 'integer', 256 * 1024, positive),
      field('checkpoint_min_layer_bytes', 'checkpointMinLayerBytes', 'integer', 8 * 1024 * 1024, nonNegative),
      field('range_reads', 'rangeReads', 'boolean', true),
      field('range_completion_bytes_per_sec', 'rangeCompletionBytesPerSec', 'integer', 32 * 1024 * 1024, nonNegative),
      field('range_completion_idle_ms', 'rangeCompletionIdleMs', 'integer', 2_000, nonNegative),
      // A read that misses to the registry also takes the spans after its own (storage/fetch-ahead.ts).
      field('range_fetch_ahead_bytes', 'rangeFetchAheadBytes', 'integer', 4 * 1024 * 1024, nonNegative),
      field('range_fetch_ahead_ms', 'rangeFetchAheadMs', 'integer', 10, positive),
      // Bounds on hostile layers and indexes (clip/limits.ts holds the same defaults).
      field('max_entries', 'maxEntries', 'integer', 2_000_000, positive),
      field('max_index_bytes', 'maxIndexBytes', 'integer', 512 * 1024 * 1024, (v: number) =>
        v > 0 && v <= 1024 * 1024 * 1024 ? undefined : 'must be between 1 and 1073741824',
      ),
      field('max_xattr_bytes_per_entry', 'maxXattrBytesPerEntry', 'integer', 256 * 1024, positive),
      field('max_xattr_bytes', 'maxXattrBytes', 'integer', 64 * 1024 * 1024, positive),
      // One span of a gzip checkpoint or zstd frame table (zran/span-bounds.ts holds the same defaults).
      field('max_span_bytes', 'maxSpanBytes', 'integer', 64 * 1024 * 1024, spanBound),
      field('max_span_compressed_bytes', 'maxSpanCompressedBytes', 'integer', 64 * 1024 * 1024, spanBound),
    ],
  },
  {
    toml: 'prefetch',
    name: 'prefetch',
    fields: [
      field('enabled', 'enabled', 'boolean', true),
      field('record_window_ms', 'recordWindowMs', 'integer', 10_000, positive),
      field('max_bytes', 'maxBytes', 'integer', 256 * 1024 * 1024, nonNegative),
    ],
  },
  {
    // Deadlines of the waits a container's read can make (storage/README.md "Bounded failure").
    toml: 'reads',
    name: 'reads',
    fields: [
      field('timeout_ms', 'timeoutMs', 'integer', 30_000, positive),
      field('stall_timeout_ms', 'stallTimeoutMs', 'integer', 30_000, positive),
      field('background_request_timeout_ms', 'backgroundRequestTimeoutMs', 'integer', 120_000, positive),
      field('range_retry_after_ms', 'rangeRetryAfterMs', 'integer', 30_000, nonNegative),
      // Background work yields to containers' FUSE requests (storage/read-activity.ts).
      field('background_idle_ms', 'backgroundIdleMs', 'integer', 100, nonNegative),
      field('background_max_delay_ms', 'backgroundMaxDelayMs', 'integer', 1_000, nonNegative),
      field('background_run_ms', 'backgroundRunMs', 'integer', 100, nonNegative),
      field('background_fill_yields', 'backgroundFillYields', 'boolean', true),
    ],
  },
  {
    toml: 'cache',
    name: 'cache',
    fields: [
      field('max_size_bytes', 'maxSizeBytes', 'integer', 0, nonNegative),
      // Completed lazy layers become plain overlay lower dirs for new containers (no FUSE, no daemon).
      field('extract_completed', 'extractCompleted', 'boolean', true),
    ],
  },
  {
    toml: 'content_cache',
    name: 'contentCache',
    fields: [
      field('backend', 'backend', 'string', 'none', oneOf('none', 'redis')),
      // host:port, or redis:// / rediss:// (TLS) URLs without credentials.
      field('addresses', 'addresses', 'string[]', [], (v: string[]) =>
        v.every((a) => /^(?:rediss?:\/\/)?(?:\[[0-9a-fA-F:]+\]|[^\s:/@[\]]+):\d{1,5}\/?$/.test(a))
          ? undefined
          : 'must be "host:port", "redis://host:port" or "rediss://host:port"',
      ),
      field('cluster', 'cluster', 'boolean', false),
      field('username', 'username', 'string', ''),
      field('password', 'password', 'string', ''),
      field('key_file', 'keyFile', 'string', '', optionalAbsolutePath),
      // Without key_file a Redis backend is refused unless this says CRCs are enough (Redis trusted).
      field('allow_unverified', 'allowUnverified', 'boolean', false),
      field('tls', 'tls', 'boolean', false),
      field('chunk_size_bytes', 'chunkSizeBytes', 'integer', 4 << 20, (v: number) =>
        v >= 4096 && v <= 512 << 20 ? undefined : 'must be between 4096 and 536870912',
      ),
      field('timeout_ms', 'timeoutMs', 'integer', 1_000, positive),
      field('on_unavailable', 'onUnavailable', 'string', 'registry', oneOf('registry', 'error')),
      field('publish_concurrency', 'publishConcurrency', 'integer', 4, positive),
      field('readahead_chunks', 'readaheadChunks', 'integer', 2, nonNegative),
      // Range-read spans offered to the ContentCache wait for the node's reads (storage/span-offer-queue.ts).
      field('span_offer_idle_ms', 'spanOfferIdleMs', 'integer', 100, nonNegative),
      field('span_offer_max_delay_ms', 'spanOfferMaxDelayMs', 'integer', 30_000, nonNegative),
      field('span_offer_max_held_bytes', 'spanOfferMaxHeldBytes', 'integer', 0, nonNegative),
      field('span_offer_close_flush_ms', 'spanOfferCloseFlushMs', 'integer', 2_000, nonNegative),
    ],
  },
  {
    toml: 'tracing',
    name: 'tracing',
    fields: [
      field('endpoint', 'endpoint', 'string', ''),
      field('protocol', 'protocol', 'string', 'http/protobuf', oneOf('grpc', 'http/protobuf', 'http/json')),
      field('sample_ratio', 'sampleRatio', 'number', 1, ratio),
      field('service_name', 'serviceName', 'string', 'clip-snapshotter'),
      field('start_trace_idle_ms', 'startTraceIdleMs', 'integer', 5000, positive),
      field('start_trace_max_ms', 'startTraceMaxMs', 'integer', 120000, positive),
    ],
  },
  {
    // The CRI image-service proxy (src/cri/): keeps the kubelet's per-pull credentials for lazy reads.
    toml: 'cri',
    name: 'cri',
    fields: [
      field('enabled', 'enabled', 'boolean', false),
      field('address', 'address', 'string', '/run/clip-snapshotter/cri-image.sock', absolutePath),
      field('containerd_address', 'containerdAddress', 'string', '/run/containerd/containerd.sock', absolutePath),
      field('credential_ttl_s', 'credentialTtlS', 'integer', 86_400, positive),
      field('max_credentials', 'maxCredentials', 'integer', 1_000, positive),
      field('max_credential_bytes', 'maxCredentialBytes', 'integer', 4 * 1024 * 1024, positive),
    ],
  },
  {
    toml: 'fuse_server',
    name: 'fuseServer',
    fields: [
      // separate: FUSE is served by `clip-snapshotter fuse-server`, which outlives daemon restarts.
      field('mode', 'mode', 'string', 'separate', oneOf('separate', 'in_process')),
      field('address', 'address', 'string', '', optionalAbsolutePath),
      // Start a FUSE server when none answers (off when a service manager starts it).
      field('spawn', 'spawn', 'boolean', true),
      // When a spawned one starts: with the daemon (a cold node's first Prepare does not wait for
      // it), or at the first lazy mount (no FUSE server's memory on a node that never mounts one).
      field('start', 'start', 'string', 'with_daemon', oneOf('with_daemon', 'first_mount')),
      // kernel: our own FUSE implementation on /dev/fuse (needs root and the clip_fusedev addon);
      // its connections can be handed to a new FUSE server (`fuse-server --take-over`). libfuse:
      // fuse-native (works without root, cannot hand over).
      field('driver', 'driver', 'string', 'kernel', oneOf('libfuse', 'kernel')),
      // V8's old-generation limit of a FUSE server this daemon (or upgrade-fuse-server) starts; 0 = V8's own.
      field('max_old_space_mb', 'maxOldSpaceMb', 'integer', 0, (v: number) =>
        v === 0 || (v >= 64 && v <= 65536) ? undefined : 'must be 0 (V8\'s default) or between 64 and 65536',
      ),
    ],
  },
  {
    toml: 'metrics',
    name: 'metrics',
    fields: [field('address', 'address', 'string', '', hostPort)],
  },
];
