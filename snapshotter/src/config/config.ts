import { readFile } from 'node:fs/promises';
import { parse as parseToml, TomlError } from 'smol-toml';
import { invalidArgument, isKind, notFound } from '../errors/index.js';
import { SCHEMA, type FieldSpec, type FieldType, type SectionSpec } from './schema.js';

/** The daemon's configuration, after defaults, file and flags are merged and validated. */
export interface Config {
  root: string;
  address: string;
  /** The status socket; "" = `status.sock` beside `address`. */
  statusAddress: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  containerdAddress: string;
  containerdNamespace: string;
  registry: {
    configPath: string;
    dockerConfig: string;
    plainHttp: boolean;
    platform: string;
    timeoutMs: number;
    maxRetries: number;
    /** A kubelet CredentialProviderConfig (YAML/JSON); '' = no credential providers. */
    credentialProviderConfig: string;
    /** Where the providers' binaries are; required with `credentialProviderConfig`. */
    credentialProviderBinDir: string;
    /** Deadline of one docker credential helper or credential provider run. */
    credentialPluginTimeoutMs: number;
  };
  index: {
    buildMissing: boolean;
    /** Use indexes this node did not build (ContentCache, registry artifacts); false = build every index here. */
    acceptForeignIndexes: boolean;
    /** Rebuild such an index from its layer once the layer is complete; a difference quarantines the mounts through it. */
    checkForeignIndexes: boolean;
    /** Build zran checkpoints for gzip layers into indexes this node builds (needs the clip_zran addon). */
    gzipCheckpoints: boolean;
    /** Record the frame structure of multi-frame zstd layers into indexes this node builds. */
    zstdFrameTables: boolean;
    checkpointSpanBytes: number;
    checkpointMinLayerBytes: number;
    /** Serve misses on layers whose index has checkpoints with HTTP Range requests. */
    rangeReads: boolean;
    /** Background completion rate of a range-read layer (compressed bytes/s); 0 = none. */
    rangeCompletionBytesPerSec: number;
    /** Completion waits for this long without on-demand range fetches. */
    rangeCompletionIdleMs: number;
    /** Uncompressed bytes past its own spans a read that misses to the registry also fetches (0 = none). */
    rangeFetchAheadBytes: number;
    /** ... at most what the link moves in this many ms at its measured rate. */
    rangeFetchAheadMs: number;
    /** Tar members per layer and rows per index. */
    maxEntries: number;
    /** Inflated size of one clip index. */
    maxIndexBytes: number;
    /** xattr bytes of one entry, inherited global PAX xattrs included. */
    maxXattrBytesPerEntry: number;
    /** xattr bytes of one layer's entries together. */
    maxXattrBytes: number;
    /** Uncompressed bytes one span of a layer's random-access table may decode to. */
    maxSpanBytes: number;
    /** Compressed bytes one such span may be fetched as. */
    maxSpanCompressedBytes: number;
  };
  /** Start profiles: record what containers read first, prefetch it on the next cold node. */
  prefetch: { enabled: boolean; recordWindowMs: number; maxBytes: number };
  /** Deadlines on what a container's read waits for. */
  reads: {
    /** A read no tier serves within this gets EIO (`CLIP_LAYER_READ_TIMEOUT`). */
    timeoutMs: number;
    /** A whole-layer download attempt receiving less than 64 KiB in this long is aborted and retried. */
    stallTimeoutMs: number;
    /** Deadline of one Range request of a prefetch or a background completion batch. */
    backgroundRequestTimeoutMs: number;
    /** How long a layer whose range read failed transiently uses the whole-layer path. */
    rangeRetryAfterMs: number;
    /** Background work (completion, hashing, publishing, extraction) waits until no FUSE request ran for this long. */
    backgroundIdleMs: number;
    /** The longest one batch of background work waits for FUSE requests to pause; 0 = it never waits. */
    backgroundMaxDelayMs: number;
    /** After a batch was let through by that bound, background work runs this long without waiting. */
    backgroundRunMs: number;
    /** Whether range completion's fetch batches wait for FUSE requests too (the hash, publish, extraction and span offers always do). */
    backgroundFillYields: boolean;
  };
  cache: { maxSizeBytes: number; extractCompleted: boolean };
  contentCache: {
    backend: 'none' | 'redis';
    addresses: string[];
    cluster: boolean;
    username: string;
    password: string;
    /** Cluster key(s) that sign and verify every ContentCache object; '' needs `allowUnverified`. */
    keyFile: string;
    /** Accept a Redis ContentCache without `keyFile` (CRCs only: Redis trusted). */
    allowUnverified: boolean;
    tls: boolean;
    chunkSizeBytes: number;
    timeoutMs: number;
    onUnavailable: 'registry' | 'error';
    publishConcurrency: number;
    readaheadChunks: number;
    /** Span offers wait until no on-demand fetch ran for this long. */
    spanOfferIdleMs: number;
    /** An offer is published at the latest this long after it was queued. */
    spanOfferMaxDelayMs: number;
    /** Span bytes the offer queue holds; offers beyond it re-read and re-hash their span from disk. */
    spanOfferMaxHeldBytes: number;
    /** How long shutdown (and a FUSE-server hand-over) keeps publishing queued offers. */
    spanOfferCloseFlushMs: number;
  };
  tracing: {
    endpoint: string;
    protocol: 'grpc' | 'http/protobuf' | 'http/json';
    sampleRatio: number;
    serviceName: string;
    startTraceIdleMs: number;
    startTraceMaxMs: number;
  };
  /** The CRI image-service proxy that keeps the kubelet's pull credentials (off by default). */
  cri: {
    enabled: boolean;
    /** The socket the kubelet's `--image-service-endpoint` names. */
    address: string;
    /** containerd's socket, where its CRI plugin serves the ImageService. */
    containerdAddress: string;
    credentialTtlS: number;
    maxCredentials: number;
    maxCredentialBytes: number;
  };
  fuseServer: { mode: 'separate' | 'in_process'; address: string; spawn: boolean; start: 'with_daemon' | 'first_mount'; driver: 'libfuse' | 'kernel'; maxOldSpaceMb: number };
  metrics: { address: string };
}

/** Where the daemon looks for its config when `--config` is not given. */
export const DEFAULT_CONFIG_PATH = '/etc/clip-snapshotter/config.toml';

type Table = Record<string, unknown>;

/** The configuration with nothing but defaults. */
export function defaultConfig(): Config {
  return parseConfig('', '<defaults>');
}

/** Parse and validate TOML text; `source` names the file in every error message. */
export function parseConfig(text: string, source: string): Config {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : '';
    throw invalidArgument('CLIP_CONFIG_SYNTAX', `config ${source}${where}: ${(err as Error).message.split('\n')[0]}`, err);
  }
  rejectUnknown(doc, source);
  const out: Table = {};
  for (const section of SCHEMA) {
    const table = section.toml === '' ? doc : sectionTable(doc, section, source);
    const target = section.name === '' ? out : ((out[section.name] = {}) as Table);
    for (const f of section.fields) target[f.name] = readField(table, f, qualified(section, f), source);
  }
  const cfg = out as unknown as Config;
  if ((cfg.registry.credentialProviderConfig === '') !== (cfg.registry.credentialProviderBinDir === '')) {
    throw invalidArgument('CLIP_CONFIG_VALUE', `config ${source}: registry.credential_provider_config and registry.credential_provider_bin_dir are set together or not at all`);
  }
  // Tables this node builds have spans of about checkpoint_span_bytes: they must fit the bound.
  if (cfg.index.checkpointSpanBytes > cfg.index.maxSpanBytes) {
    throw invalidArgument('CLIP_CONFIG_VALUE', `config ${source}: index.checkpoint_span_bytes (${cfg.index.checkpointSpanBytes}) must not exceed index.max_span_bytes (${cfg.index.maxSpanBytes}), or the tables this node builds would be refused`);
  }
  // A byte reaches a container only after a check a writer of Redis cannot forge: without a key
  // nothing but CRCs (which any writer recomputes) stands between Redis and every container.
  if (cfg.contentCache.backend === 'redis' && cfg.contentCache.keyFile === '' && !cfg.contentCache.allowUnverified) {
    throw invalidArgument(
      'CLIP_CONTENT_CACHE_KEY_REQUIRED',
      `config ${source}: content_cache.backend = "redis" needs content_cache.key_file (the cluster key that signs and verifies every ContentCache object; without it whoever can write to Redis chooses what containers read). Set content_cache.allow_unverified = true to run with CRC checks only`,
    );
  }
  return cfg;
}

/** Load a config file; a missing file is allowed only when `optional` (the default path). */
export async function loadConfig(path: string, optional: boolean): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      if (optional) return defaultConfig();
      throw notFound('CLIP_CONFIG_MISSING', `config file ${path}`, err);
    }
    throw invalidArgument('CLIP_CONFIG_UNREADABLE', `config file ${path}: ${(err as Error).message}`, err);
  }
  return parseConfig(text, path);
}

/** True for errors that come from a bad or missing config file. */
export function isConfigError(err: unknown): boolean {
  return isKind(err, 'invalid_argument') || isKind(err, 'not_found');
}

function qualified(section: SectionSpec, f: FieldSpec): string {
  return section.toml === '' ? f.toml : `${section.toml}.${f.toml}`;
}

function sectionTable(doc: Table, section: SectionSpec, source: string): Table {
  const t = doc[section.toml];
  if (t === undefined) return {};
  if (typeof t !== 'object' || t === null || Array.isArray(t)) {
    throw invalidArgument('CLIP_CONFIG_TYPE', `config ${source}: "${section.toml}" must be a table`);
  }
  return t as Table;
}

function rejectUnknown(doc: Table, source: string): void {
  const sections = new Map(SCHEMA.map((s) => [s.toml, s]));
  const top = sections.get('');
  for (const key of Object.keys(doc)) {
    if (top?.fields.some((f) => f.toml === key)) continue;
    const section = sections.get(key);
    if (!section) throw invalidArgument('CLIP_CONFIG_UNKNOWN_KEY', `config ${source}: unknown key "${key}"`);
    const table = doc[key];
    if (typeof table !== 'object' || table === null || Array.isArray(table)) continue;
    for (const sub of Object.keys(table)) {
      if (!section.fields.some((f) => f.toml === sub)) {
        throw invalidArgument('CLIP_CONFIG_UNKNOWN_KEY', `config ${source}: unknown key "${key}.${sub}"`);
      }
    }
  }
}

function readField(table: Table, f: FieldSpec, name: string, source: string): unknown {
  const raw = table[f.toml];
  if (raw === undefined) return structuredClone(f.default);
  const value = coerce(raw, f.type);
  if (value === undefined) {
    throw invalidArgument('CLIP_CONFIG_TYPE', `config ${source}: "${name}" must be ${describe(f.type)}, got ${JSON.stringify(raw)}`);
  }
  const complaint = f.check?.(value as never);
  if (complaint) throw invalidArgument('CLIP_CONFIG_VALUE', `config ${source}: "${name}" ${complaint}, got ${JSON.stringify(value)}`);
  return value;
}

function coerce(raw: unknown, type: FieldType): unknown {
  switch (type) {
    case 'string':
      return typeof raw === 'string' ? raw : undefined;
    case 'boolean':
      return typeof raw === 'boolean' ? raw : undefined;
    case 'integer':
      if (typeof raw === 'bigint') return Number(raw);
      return typeof raw === 'number' && Number.isInteger(raw) ? raw : undefined;
    case 'number':
      return typeof raw === 'number' ? raw : undefined;
    case 'string[]':
      return Array.isArray(raw) && raw.every((v) => typeof v === 'string') ? raw : undefined;
    default: {
      const never: never = type;
      return never;
    }
  }
}

function describe(type: FieldType): string {
  return type === 'string[]' ? 'an array of strings' : type === 'integer' ? 'an integer' : `a ${type}`;
}
