/**
 * The expiring lock that lets one node publish a layer at a time: `SET key token NX PX ttl`,
 * refreshed while the publish runs and released only by its owner. A publisher that dies simply
 * stops refreshing; the lock expires and another node may publish.
 */
import { randomBytes } from 'node:crypto';
import type { RedisConnection } from './redis-connection.js';

const REFRESH = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/** A held lock; `lost` turns true when a refresh finds someone else's token (or none). */
export class PublishLock {
  readonly #conn: RedisConnection;
  readonly #key: string;
  readonly #token: string;
  readonly #ttlMs: number;
  readonly #timer: NodeJS.Timeout;
  #lost = false;

  private constructor(conn: RedisConnection, key: string, token: string, ttlMs: number) {
    this.#conn = conn;
    this.#key = key;
    this.#token = token;
    this.#ttlMs = ttlMs;
    this.#timer = setInterval(() => void this.#refresh(), Math.max(50, Math.floor(ttlMs / 3)));
    this.#timer.unref();
  }

  /** Take the lock, or `undefined` when another publisher holds it. */
  static async acquire(conn: RedisConnection, key: string, ttlMs: number): Promise<PublishLock | undefined> {
    const token = randomBytes(12).toString('hex');
    const ok = await conn.run('lock', (c) => c.set(key, token, 'PX', ttlMs, 'NX'));
    return ok === 'OK' ? new PublishLock(conn, key, token, ttlMs) : undefined;
  }

  get lost(): boolean {
    return this.#lost;
  }

  /** Stop refreshing and delete the lock if it is still ours. */
  async release(): Promise<void> {
    clearInterval(this.#timer);
    await this.#conn.run('unlock', (c) => c.eval(RELEASE, 1, this.#key, this.#token)).catch(() => {});
  }

  async #refresh(): Promise<void> {
    try {
      const n = await this.#conn.run('lock refresh', (c) => c.eval(REFRESH, 1, this.#key, this.#token, String(this.#ttlMs)));
      if (n !== 1) this.#lost = true;
    } catch {
      // A refresh that cannot reach Redis is not proof of loss; the publish's own writes will fail.
    }
  }
}
