/**
 * One ioredis client (standalone or Cluster) with fail-fast semantics: commands are never queued
 * while disconnected, so a dead Redis costs a read microseconds, not `timeout_ms`; the first use
 * waits for the connection at most `timeoutMs`. Errors leave here as `unavailable` ClipErrors whose
 * messages never contain credentials.
 */
import { createRequire } from 'node:module';
import type { Cluster, Redis } from 'ioredis';
import { invalidArgument, messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';

/**
 * ioredis, loaded when the first connection is made: a node without a ContentCache never pays its
 * ≈ 15 MB of resident memory (it is CommonJS, so this stays synchronous).
 */
function ioredis(): typeof import('ioredis') {
  return createRequire(import.meta.url)('ioredis') as typeof import('ioredis');
}

/** How to reach Redis. */
export interface RedisEndpoint {
  /** `host:port`, `redis://host:port` or `rediss://host:port` (TLS). */
  addresses: readonly string[];
  cluster: boolean;
  username: string;
  password: string;
  tls: boolean;
  timeoutMs: number;
}

/** A parsed address. */
export interface RedisAddress {
  host: string;
  port: number;
  tls: boolean;
}

const ADDRESS = /^(?:(redis|rediss):\/\/)?(\[[0-9a-fA-F:]+\]|[^\s:/[\]]+):(\d{1,5})\/?$/;
const MAX_RECONNECT_DELAY_MS = 2_000;
const ERROR_LOG_EVERY_MS = 10_000;

/** Parse `host:port` / `redis[s]://host:port`; throws invalid_argument otherwise. */
export function parseRedisAddress(text: string): RedisAddress {
  const m = ADDRESS.exec(text);
  const port = Number(m?.[3]);
  if (!m?.[2] || !(port > 0 && port < 65536)) {
    throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `content cache address "${text}" must be host:port, redis://host:port or rediss://host:port`);
  }
  return { host: m[2].replace(/^\[|\]$/g, ''), port, tls: m[1] === 'rediss' };
}

type Client = Redis | Cluster;

/** A lazily connected Redis or Redis Cluster client. */
export class RedisConnection {
  readonly client: Client;
  readonly #timeoutMs: number;
  readonly #log: Logger;
  #lastError = '';
  #loggedErrorAtMs = 0;
  #connecting: Promise<void> | undefined;

  constructor(endpoint: RedisEndpoint, log: Logger) {
    if (endpoint.addresses.length === 0) throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', 'content cache backend "redis" needs at least one address');
    const nodes = endpoint.addresses.map(parseRedisAddress);
    const tls = endpoint.tls || nodes.some((n) => n.tls) ? {} : undefined;
    this.#timeoutMs = endpoint.timeoutMs;
    this.#log = log;
    const common = {
      ...(endpoint.username ? { username: endpoint.username } : {}),
      ...(endpoint.password ? { password: endpoint.password } : {}),
      ...(tls ? { tls } : {}),
      connectTimeout: endpoint.timeoutMs,
      commandTimeout: endpoint.timeoutMs,
      maxRetriesPerRequest: 1,
      connectionName: 'clip-snapshotter',
    };
    const retry = (times: number): number => Math.min(50 * 2 ** times, MAX_RECONNECT_DELAY_MS);
    const { Cluster, Redis } = ioredis();
    this.client = endpoint.cluster
      ? new Cluster(nodes.map(({ host, port }) => ({ host, port })), {
          redisOptions: common,
          enableOfflineQueue: false,
          lazyConnect: true,
          clusterRetryStrategy: retry,
          slotsRefreshTimeout: endpoint.timeoutMs,
        })
      : new Redis({ host: nodes[0]!.host, port: nodes[0]!.port, ...common, enableOfflineQueue: false, lazyConnect: true, retryStrategy: retry });
    this.client.on('error', (err: unknown) => this.#onError(err));
  }

  /** Resolve when commands can be sent; throws `unavailable` fast when Redis is known down. */
  async ready(): Promise<Client> {
    const status = this.client.status;
    if (status === 'ready') return this.client;
    if (status === 'wait') this.#connecting ??= this.#connect();
    if (this.#connecting) {
      await this.#connecting;
      return this.client;
    }
    throw this.unavailable(`redis is ${status}`);
  }

  /** Run a command, turning every client-side failure into `unavailable`. */
  async run<T>(what: string, command: (c: Client) => Promise<T>): Promise<T> {
    const client = await this.ready();
    try {
      return await command(client);
    } catch (err) {
      throw this.unavailable(`${what}: ${messageOf(err)}`, err);
    }
  }

  /** An `unavailable` error mentioning the last connection error (never credentials). */
  unavailable(what: string, cause?: unknown): Error {
    const last = this.#lastError && !what.includes(this.#lastError) ? ` (last error: ${this.#lastError})` : '';
    return unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', `content cache ${what}${last}`, cause);
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  async #connect(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.unavailable(`connect did not complete within ${this.#timeoutMs} ms`)), this.#timeoutMs);
    });
    try {
      await Promise.race([this.client.connect(), timeout]);
    } catch (err) {
      throw (err as { kind?: string }).kind ? err : this.unavailable(`connect: ${messageOf(err)}`, err);
    } finally {
      clearTimeout(timer);
      this.#connecting = undefined;
    }
  }

  // ioredis reconnects on its own; one log line per interval keeps a dead Redis from flooding logs.
  #onError(err: unknown): void {
    this.#lastError = messageOf(err);
    const now = Date.now();
    if (now - this.#loggedErrorAtMs < ERROR_LOG_EVERY_MS) return;
    this.#loggedErrorAtMs = now;
    this.#log.warn({ source: 'content_cache', err: this.#lastError }, 'content cache connection error');
  }
}
