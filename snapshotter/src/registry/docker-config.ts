/**
 * Credentials from a docker `config.json`, as docker reads it: a host listed in `credHelpers` asks
 * that helper; otherwise an `auths` entry with credentials (`auth`, `username`/`password`,
 * `identitytoken`, `registrytoken`) is used; otherwise `credsStore`, when set, is asked. The file
 * is re-read when its modification time or size changes, so rotated credentials are picked up.
 */
import { readFile, stat } from 'node:fs/promises';
import { invalidArgument } from '../errors/index.js';
import { DockerCredentialHelper, type CredentialHelperOptions } from './credential-helper.js';
import { normalizeCredentialHost, type Credential, type CredentialStore } from './credentials.js';

interface ParsedDockerConfig {
  auths: Map<string, Credential>;
  helpers: Map<string, string>;
  store: string | undefined;
}

const EMPTY: ParsedDockerConfig = { auths: new Map(), helpers: new Map(), store: undefined };

/** A docker config.json, its helpers run on demand. */
export class DockerConfigCredentials implements CredentialStore {
  #path: string;
  #helperOpts: CredentialHelperOptions;
  #loaded: { stamp: string; config: Promise<ParsedDockerConfig> } | undefined;
  #helpers = new Map<string, DockerCredentialHelper>();

  constructor(path: string, helperOpts: CredentialHelperOptions = {}) {
    this.#path = path;
    this.#helperOpts = helperOpts;
  }

  async get(host: string): Promise<Credential | undefined> {
    const cfg = await this.#config();
    const key = normalizeCredentialHost(host);
    const helper = cfg.helpers.get(key);
    if (helper !== undefined) return this.#helper(helper).get(host);
    const found = cfg.auths.get(key);
    if (found) return found;
    return cfg.store === undefined ? undefined : this.#helper(cfg.store).get(host);
  }

  async #config(): Promise<ParsedDockerConfig> {
    let stamp: string;
    try {
      const st = await stat(this.#path);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
      throw err;
    }
    if (this.#loaded?.stamp !== stamp) {
      const config = loadDockerConfig(this.#path);
      config.catch(() => undefined);
      this.#loaded = { stamp, config };
    }
    return this.#loaded.config;
  }

  #helper(name: string): DockerCredentialHelper {
    let h = this.#helpers.get(name);
    if (!h) {
      h = new DockerCredentialHelper(name, this.#helperOpts);
      this.#helpers.set(name, h);
    }
    return h;
  }
}

async function loadDockerConfig(path: string): Promise<ParsedDockerConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY;
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `docker config ${path}: not valid JSON`, err);
  }
  return parseDockerConfig(doc, path);
}

/** Parse a docker config document (auths, credHelpers, credsStore); exported for tests. */
export function parseDockerConfig(doc: unknown, source: string): ParsedDockerConfig {
  const d = (doc ?? {}) as { credHelpers?: unknown; credsStore?: unknown };
  if (typeof d !== 'object' || Array.isArray(d)) throw configError(source, 'not a JSON object');
  const helpers = new Map<string, string>();
  if (d.credHelpers !== undefined) {
    if (typeof d.credHelpers !== 'object' || d.credHelpers === null || Array.isArray(d.credHelpers)) throw configError(source, '"credHelpers" is not an object');
    for (const [host, name] of Object.entries(d.credHelpers as Record<string, unknown>)) {
      if (typeof name !== 'string' || name === '') throw configError(source, `credHelpers["${host}"] is not a helper name`);
      helpers.set(normalizeCredentialHost(host), name);
    }
  }
  if (d.credsStore !== undefined && typeof d.credsStore !== 'string') throw configError(source, '"credsStore" is not a string');
  const store = typeof d.credsStore === 'string' && d.credsStore !== '' ? d.credsStore : undefined;
  return { auths: parseDockerAuths(doc, source), helpers, store };
}

/** Turn the `auths` object of a docker config into credentials; exported for tests. */
export function parseDockerAuths(doc: unknown, source: string): Map<string, Credential> {
  const out = new Map<string, Credential>();
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (auths === undefined) return out;
  if (typeof auths !== 'object' || auths === null) throw configError(source, '"auths" is not an object');
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

function configError(source: string, why: string) {
  return invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `docker config ${source}: ${why}`);
}
