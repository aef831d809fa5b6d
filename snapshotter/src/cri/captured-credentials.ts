/**
 * The pull secrets the kubelet passed with CRI PullImage calls, kept for the snapshotter's lazy
 * reads of the same repository: in memory only (never written, never logged), at most
 * `maxEntries` entries and `maxBytes` bytes of secrets, each forgotten `ttlMs` after its last pull.
 */
import { normalizeCredentialHost, type Credential, type CredentialStore } from '../registry/index.js';

export interface CapturedCredentialsOptions {
  ttlMs: number;
  maxEntries: number;
  /** Bound on the secrets' total size; one credential larger than this is not kept. */
  maxBytes: number;
  /** Clock, injectable for tests. */
  nowMs?: () => number;
}

interface Entry {
  credential: Credential;
  bytes: number;
  expiresAtMs: number;
}

/** A credential store fed by the CRI image-service proxy, keyed by registry host and repository. */
export class CapturedCredentials implements CredentialStore {
  // Insertion order is pull order (remember() re-inserts): the first key is the oldest pull.
  #entries = new Map<string, Entry>();
  #opts: CapturedCredentialsOptions;
  #now: () => number;
  #bytes = 0;

  constructor(opts: CapturedCredentialsOptions) {
    this.#opts = opts;
    this.#now = opts.nowMs ?? Date.now;
  }

  /** Keep `credential` for `host`/`repository`; false when it alone is over the byte bound. */
  remember(host: string, repository: string, credential: Credential): boolean {
    const bytes = sizeOf(credential);
    if (bytes > this.#opts.maxBytes) return false;
    const key = keyOf(host, repository);
    this.#drop(key);
    this.#entries.set(key, { credential, bytes, expiresAtMs: this.#now() + this.#opts.ttlMs });
    this.#bytes += bytes;
    this.#evict();
    return true;
  }

  async get(host: string, repository?: string): Promise<Credential | undefined> {
    if (repository === undefined) return undefined;
    const key = keyOf(host, repository);
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (this.#now() >= e.expiresAtMs) {
      this.#drop(key);
      return undefined;
    }
    return e.credential;
  }

  /** Entries and secret bytes held now (expired ones included until looked up or evicted). */
  stats(): { entries: number; bytes: number } {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }

  #drop(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    this.#entries.delete(key);
    this.#bytes -= e.bytes;
  }

  /** Expired entries first, then the oldest pulls, until both bounds hold. */
  #evict(): void {
    const now = this.#now();
    for (const [key, e] of [...this.#entries]) if (now >= e.expiresAtMs) this.#drop(key);
    while (this.#entries.size > this.#opts.maxEntries || this.#bytes > this.#opts.maxBytes) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#drop(oldest.value);
    }
  }
}

function keyOf(host: string, repository: string): string {
  return `${normalizeCredentialHost(host)}/${repository}`;
}

function sizeOf(c: Credential): number {
  switch (c.type) {
    case 'basic':
      return Buffer.byteLength(c.username) + Buffer.byteLength(c.password);
    case 'identity_token':
      return Buffer.byteLength(c.username) + Buffer.byteLength(c.token);
    case 'registry_token':
      return Buffer.byteLength(c.token);
  }
}
