import { readFile } from 'node:fs/promises';
import { invalidArgument } from '../errors/index.js';

/** What a registry host may be given; secrets never appear in messages or logs. */
export type Credential =
  | { type: 'basic'; username: string; password: string }
  | { type: 'identity_token'; username: string; token: string }
  | { type: 'registry_token'; token: string };

/** Looks up credentials for the registry host being contacted (`host[:port]`). */
export interface CredentialStore {
  get(host: string): Promise<Credential | undefined>;
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

/** Credentials from a docker `config.json` (`auths` with `auth`, `username`/`password`, `identitytoken`). */
export class DockerConfigCredentials implements CredentialStore {
  #path: string;
  #loaded: Promise<Map<string, Credential>> | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  async get(host: string): Promise<Credential | undefined> {
    this.#loaded ??= loadDockerConfig(this.#path);
    return (await this.#loaded).get(normalizeCredentialHost(host));
  }
}

/** Tries several stores in order (explicit config first, then docker config). */
export class ChainedCredentials implements CredentialStore {
  #stores: CredentialStore[];

  constructor(stores: CredentialStore[]) {
    this.#stores = stores;
  }

  async get(host: string): Promise<Credential | undefined> {
    for (const store of this.#stores) {
      const found = await store.get(host);
      if (found) return found;
    }
    return undefined;
  }
}

async function loadDockerConfig(path: string): Promise<Map<string, Credential>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `docker config ${path}: not valid JSON`, err);
  }
  return parseDockerAuths(doc, path);
}

/** Turn the `auths` object of a docker config into credentials; exported for tests. */
export function parseDockerAuths(doc: unknown, source: string): Map<string, Credential> {
  const out = new Map<string, Credential>();
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (auths === undefined) return out;
  if (typeof auths !== 'object' || auths === null) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `docker config ${source}: "auths" is not an object`);
  }
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    const cred = parseAuthEntry(entry, `${source}: auths["${key}"]`);
    if (cred) out.set(normalizeCredentialHost(key), cred);
  }
  return out;
}

function parseAuthEntry(entry: unknown, where: string): Credential | undefined {
  const e = (entry ?? {}) as Record<string, unknown>;
  let username = typeof e.username === 'string' ? e.username : '';
  let password = typeof e.password === 'string' ? e.password : '';
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `docker config ${where}: "auth" is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (typeof e.identitytoken === 'string' && e.identitytoken !== '') {
    return { type: 'identity_token', username, token: e.identitytoken };
  }
  if (typeof e.registrytoken === 'string' && e.registrytoken !== '') return { type: 'registry_token', token: e.registrytoken };
  if (username === '' && password === '') return undefined;
  return { type: 'basic', username, password };
}
