/**
 * The one seam every registry credential goes through. A `CredentialStore` answers "what do I send
 * to this registry host (for this repository)?"; the client asks a `ChainedCredentials` list of
 * sources in order — e.g. CRI-captured pull credentials, explicit config, kubelet credential
 * providers, then the docker config.json (auths, credHelpers, credsStore). Secrets never appear in
 * messages, logs or spans: only host names and source names do.
 */

/** What a registry host may be given. */
export type Credential =
  | { type: 'basic'; username: string; password: string }
  | { type: 'identity_token'; username: string; token: string }
  | { type: 'registry_token'; token: string };

/** Looks up credentials for the registry host being contacted (`host[:port]`). */
export interface CredentialStore {
  /**
   * Credentials for `host`, or undefined when this source has none for it. `repository` (the
   * repository path, without the host) is given when known; sources that match whole image names
   * (kubelet credential providers) use it. Rejects with a ClipError when the source is broken.
   */
  get(host: string, repository?: string): Promise<Credential | undefined>;
  /** Every credential this store holds for the host, best first (a chain: one per source). */
  all?(host: string, repository?: string): Promise<Credential[]>;
}

/** Every credential `store` offers for a host/repository, best first, duplicates removed. */
export async function credentialCandidates(store: CredentialStore | undefined, host: string, repository?: string): Promise<Credential[]> {
  if (!store) return [];
  const found = store.all ? await store.all(host, repository) : [await store.get(host, repository)];
  const out: Credential[] = [];
  for (const c of found) if (c && !out.some((o) => sameCredential(o, c))) out.push(c);
  return out;
}

/** True when two credentials would authenticate the same way. */
export function sameCredential(a: Credential, b: Credential): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const HUB_ALIASES = ['docker.io', 'index.docker.io', 'registry-1.docker.io'];

/** Reduce `https://index.docker.io/v1/`, `http://h:5000/`, `h:5000` to a comparable host key. */
export function normalizeCredentialHost(key: string): string {
  const host = key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return HUB_ALIASES.includes(host) ? 'docker.io' : host;
}

/** Credentials given directly (from the daemon config or a CLI flag), keyed by host. */
export class StaticCredentials implements CredentialStore {
  #byHost = new Map<string, Credential>();

  constructor(entries: Record<string, Credential> = {}) {
    for (const [host, cred] of Object.entries(entries)) this.#byHost.set(normalizeCredentialHost(host), cred);
  }

  async get(host: string): Promise<Credential | undefined> {
    return this.#byHost.get(normalizeCredentialHost(host));
  }
}

/**
 * Asks several sources in order; the first that has credentials for the host wins. `all` lists
 * one answer per source so a refused credential can be followed by the next source's.
 */
export class ChainedCredentials implements CredentialStore {
  #stores: CredentialStore[];

  constructor(stores: CredentialStore[]) {
    this.#stores = stores;
  }

  async get(host: string, repository?: string): Promise<Credential | undefined> {
    for (const store of this.#stores) {
      const found = await store.get(host, repository);
      if (found) return found;
    }
    return undefined;
  }

  /**
   * Every source's answer, in order. A source that fails (a broken credential helper) after an
   * earlier one answered does not fail the lookup — the earlier credential is still good to try;
   * with no answer at all its error is the result, so a broken only source is reported.
   */
  async all(host: string, repository?: string): Promise<Credential[]> {
    const out: Credential[] = [];
    for (const store of this.#stores) {
      try {
        out.push(...(await credentialCandidates(store, host, repository)));
      } catch (err) {
        if (out.length === 0) throw err;
      }
    }
    return out;
  }
}

/** Credentials kept for a while by a source that is expensive to ask (an exec'd plugin). */
export class CredentialCache {
  #entries = new Map<string, { cred: Credential | undefined; untilMs: number }>();
  #pending = new Map<string, Promise<Credential | undefined>>();
  #now: () => number;
  #maxEntries: number;

  constructor(nowMs: () => number = Date.now, maxEntries = 1024) {
    this.#now = nowMs;
    this.#maxEntries = maxEntries;
  }

  /** The cached answer for `key`, else `load()`'s (concurrent callers share one load). */
  async get(key: string, load: () => Promise<{ cred: Credential | undefined; ttlMs: number }>): Promise<Credential | undefined> {
    const hit = this.#entries.get(key);
    if (hit && this.#now() < hit.untilMs) return hit.cred;
    let p = this.#pending.get(key);
    if (!p) {
      p = load()
        .then(({ cred, ttlMs }) => {
          if (ttlMs > 0) this.#set(key, cred, this.#now() + ttlMs);
          else this.#entries.delete(key);
          return cred;
        })
        .finally(() => this.#pending.delete(key));
      this.#pending.set(key, p);
    }
    return p;
  }

  /** The cached credential for `key` if still fresh. */
  peek(key: string): Credential | undefined {
    const hit = this.#entries.get(key);
    return hit && this.#now() < hit.untilMs ? hit.cred : undefined;
  }

  /** Keep `cred` for `ttlMs` (0 keeps nothing). */
  put(key: string, cred: Credential | undefined, ttlMs: number): void {
    if (ttlMs > 0) this.#set(key, cred, this.#now() + ttlMs);
  }

  #set(key: string, cred: Credential | undefined, untilMs: number): void {
    this.#entries.delete(key);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
    this.#entries.set(key, { cred, untilMs });
  }
}
