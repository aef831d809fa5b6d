/**
 * Kubelet credential-provider plugins, configured as the kubelet configures them
 * (`--image-credential-provider-config` / `--image-credential-provider-bin-dir`): a
 * `CredentialProviderConfig` lists providers, each a binary in the bin dir with `matchImages`
 * globs. For a matching image the binary gets a `CredentialProviderRequest` on stdin and prints a
 * `CredentialProviderResponse` whose `auth` map holds credentials and whose `cacheDuration` (else
 * the provider's `defaultCacheDuration`) says how long they may be reused.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { invalidArgument } from '../errors/index.js';
import { CredentialCache, type Credential, type CredentialStore } from './credentials.js';
import { pluginBadOutput, pluginFailed, runPlugin } from './exec-plugin.js';

const CONFIG_API_VERSIONS = ['kubelet.config.k8s.io/v1', 'kubelet.config.k8s.io/v1beta1', 'kubelet.config.k8s.io/v1alpha1'];
const PLUGIN_API_VERSIONS = ['credentialprovider.kubelet.k8s.io/v1', 'credentialprovider.kubelet.k8s.io/v1beta1', 'credentialprovider.kubelet.k8s.io/v1alpha1'];
const MAX_OUTPUT_BYTES = 1024 * 1024;
const MAX_CONFIG_BYTES = 1024 * 1024;

/** What one provider run answered: the credential (if any auth key matched) and how to cache it. */
interface ProviderAnswer {
  cred: Credential | undefined;
  ttlMs: number;
  keyType: string;
}

/** One configured provider. */
export interface CredentialProviderSpec {
  name: string;
  matchImages: string[];
  defaultCacheMs: number;
  apiVersion: string;
  args: string[];
  env: Record<string, string>;
}

export interface CredentialProvidersOptions {
  /** The CredentialProviderConfig file (YAML or JSON). */
  configPath: string;
  /** Where provider binaries live; a provider's `name` is its file name here. */
  binDir: string;
  /** Deadline of one provider run. */
  timeoutMs?: number;
  nowMs?: () => number;
}

/** Every provider of a CredentialProviderConfig; the first whose matchImages match the image is run. */
export class KubeletCredentialProviders implements CredentialStore {
  #opts: CredentialProvidersOptions;
  #providers: Promise<CredentialProviderSpec[]> | undefined;
  #caches = new Map<string, CredentialCache>();
  /**
   * Runs under way, by provider and image: a pull resolves an image's layers and index artifacts
   * side by side, and each look-up would otherwise exec the plugin again before the first answer
   * is cached (kubelet shares one run per image the same way).
   */
  #running = new Map<string, Promise<ProviderAnswer>>();

  constructor(opts: CredentialProvidersOptions) {
    this.#opts = opts;
  }

  /** Read and check the config now (the daemon calls this at start so a bad file fails fast). */
  async load(): Promise<CredentialProviderSpec[]> {
    this.#providers ??= loadProviderConfig(this.#opts.configPath);
    return this.#providers;
  }

  async get(host: string, repository?: string): Promise<Credential | undefined> {
    const image = repository ? `${host}/${repository}` : host;
    for (const p of await this.load()) {
      if (!p.matchImages.some((glob) => imageMatches(glob, image))) continue;
      let cache = this.#caches.get(p.name);
      if (!cache) {
        cache = new CredentialCache(this.#opts.nowMs);
        this.#caches.set(p.name, cache);
      }
      // The cache key follows the answer's cacheKeyType, which is only known after a run: the
      // image key is tried first, then the registry key, then the global one.
      const hit = cache.peek(`image:${image}`) ?? cache.peek(`registry:${host}`) ?? cache.peek('global:');
      if (hit) return hit;
      const answer = await this.#runShared(p, image, host, cache);
      if (answer.cred) return answer.cred;
    }
    return undefined;
  }

  /** One run of `p` for `image` at a time; its answer is cached once and shared by every caller. */
  #runShared(p: CredentialProviderSpec, image: string, host: string, cache: CredentialCache): Promise<ProviderAnswer> {
    const key = `${p.name}\n${image}`;
    let run = this.#running.get(key);
    if (!run) {
      run = this.#run(p, image)
        .then((answer) => {
          const cacheKey = answer.keyType === 'Image' ? `image:${image}` : answer.keyType === 'Global' ? 'global:' : `registry:${host}`;
          if (answer.cred) cache.put(cacheKey, answer.cred, answer.ttlMs);
          return answer;
        })
        .finally(() => this.#running.delete(key));
      this.#running.set(key, run);
    }
    return run;
  }

  async #run(p: CredentialProviderSpec, image: string): Promise<ProviderAnswer> {
    const what = `credential provider ${p.name} for ${image}`;
    const request = JSON.stringify({ apiVersion: p.apiVersion, kind: 'CredentialProviderRequest', image });
    const res = await runPlugin({
      command: join(this.#opts.binDir, p.name), args: p.args, stdin: request, env: { ...process.env, ...p.env },
      timeoutMs: this.#opts.timeoutMs ?? 30_000, maxOutputBytes: MAX_OUTPUT_BYTES, what,
    });
    if (res.code !== 0) throw pluginFailed(what, `exited with status ${res.code} (its output is not shown: it may hold secrets)`);
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(res.stdout) as Record<string, unknown>;
    } catch {
      throw pluginBadOutput(what, 'response is not JSON');
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw pluginBadOutput(what, 'response is not a JSON object');
    if (doc.kind !== 'CredentialProviderResponse') throw pluginBadOutput(what, 'response kind is not "CredentialProviderResponse"');
    if (doc.apiVersion !== p.apiVersion) throw pluginBadOutput(what, `response apiVersion is not "${p.apiVersion}"`);
    const keyType = doc.cacheKeyType === undefined ? 'Registry' : doc.cacheKeyType;
    if (keyType !== 'Image' && keyType !== 'Registry' && keyType !== 'Global') throw pluginBadOutput(what, 'cacheKeyType must be "Image", "Registry" or "Global"');
    let ttlMs = p.defaultCacheMs;
    if (doc.cacheDuration !== undefined) {
      const d = typeof doc.cacheDuration === 'string' ? parseGoDuration(doc.cacheDuration) : undefined;
      if (d === undefined) throw pluginBadOutput(what, 'cacheDuration is not a duration such as "10m"');
      ttlMs = d;
    }
    const auth = doc.auth ?? {};
    if (typeof auth !== 'object' || auth === null || Array.isArray(auth)) throw pluginBadOutput(what, '"auth" is not an object');
    let best: { key: string; cred: Credential } | undefined;
    for (const [key, entry] of Object.entries(auth as Record<string, unknown>)) {
      if (!imageMatches(key, image)) continue;
      const e = (entry ?? {}) as { username?: unknown; password?: unknown };
      if (typeof e.username !== 'string' || typeof e.password !== 'string') throw pluginBadOutput(what, 'an "auth" entry lacks a username or password string');
      if (!best || key.length > best.key.length) best = { key, cred: { type: 'basic', username: e.username, password: e.password } };
    }
    return { cred: best?.cred, ttlMs, keyType };
  }
}

/** Read a CredentialProviderConfig (YAML or JSON) and check every provider. */
export async function loadProviderConfig(path: string): Promise<CredentialProviderSpec[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `credential provider config ${path}: cannot read`, err);
  }
  if (text.length > MAX_CONFIG_BYTES) throw configError(path, `larger than ${MAX_CONFIG_BYTES} bytes`);
  let doc: unknown;
  // Loaded here, not at the top: only nodes with kubelet credential providers need a YAML parser,
  // and every `clip-snapshotter pull` would otherwise pay for loading it.
  const { parse: parseYaml } = await import('yaml');
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `credential provider config ${path}: not valid YAML`, err);
  }
  return parseProviderConfig(doc, path);
}

/** Check a parsed CredentialProviderConfig document; exported for tests. */
export function parseProviderConfig(doc: unknown, path: string): CredentialProviderSpec[] {
  const d = doc as { apiVersion?: unknown; kind?: unknown; providers?: unknown } | null;
  if (typeof d !== 'object' || d === null) throw configError(path, 'not a mapping');
  if (d.kind !== 'CredentialProviderConfig') throw configError(path, 'kind must be "CredentialProviderConfig"');
  if (typeof d.apiVersion !== 'string' || !CONFIG_API_VERSIONS.includes(d.apiVersion)) throw configError(path, `apiVersion must be one of ${CONFIG_API_VERSIONS.join(', ')}`);
  if (!Array.isArray(d.providers)) throw configError(path, '"providers" must be a list');
  const names = new Set<string>();
  return d.providers.map((raw: unknown, i: number) => {
    const p = (raw ?? {}) as Record<string, unknown>;
    const where = `providers[${i}]`;
    if (typeof p.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(p.name)) throw configError(path, `${where}.name must be a file name in the bin dir`);
    if (names.has(p.name)) throw configError(path, `${where}.name "${p.name}" appears twice`);
    names.add(p.name);
    if (!Array.isArray(p.matchImages) || p.matchImages.length === 0 || !p.matchImages.every((m) => typeof m === 'string' && m !== '')) {
      throw configError(path, `${where}.matchImages must be a non-empty list of strings`);
    }
    if (typeof p.apiVersion !== 'string' || !PLUGIN_API_VERSIONS.includes(p.apiVersion)) throw configError(path, `${where}.apiVersion must be one of ${PLUGIN_API_VERSIONS.join(', ')}`);
    const defaultCacheMs = typeof p.defaultCacheDuration === 'string' ? parseGoDuration(p.defaultCacheDuration) : undefined;
    if (defaultCacheMs === undefined) throw configError(path, `${where}.defaultCacheDuration must be a duration such as "12h"`);
    if (p.args !== undefined && (!Array.isArray(p.args) || !p.args.every((a) => typeof a === 'string'))) throw configError(path, `${where}.args must be a list of strings`);
    const env: Record<string, string> = {};
    if (p.env !== undefined) {
      if (!Array.isArray(p.env)) throw configError(path, `${where}.env must be a list of {name, value}`);
      for (const e of p.env as Array<{ name?: unknown; value?: unknown }>) {
        if (typeof e?.name !== 'string' || e.name === '' || typeof e.value !== 'string') throw configError(path, `${where}.env entries need a name and a string value`);
        env[e.name] = e.value;
      }
    }
    return { name: p.name, matchImages: p.matchImages as string[], defaultCacheMs, apiVersion: p.apiVersion, args: (p.args as string[] | undefined) ?? [], env };
  });
}

/**
 * Kubelet's image matching: `glob` and `image` as `host[:port][/path]`; the hosts have the same
 * number of dot-separated labels and each label matches its glob (`*`, `?`, `[…]` within a label),
 * the ports are equal, and the glob's path is a prefix of the image's path.
 */
export function imageMatches(glob: string, image: string): boolean {
  const g = splitImage(glob);
  const t = splitImage(image);
  if (!g || !t || g.port !== t.port) return false;
  const gl = g.host.split('.');
  const tl = t.host.split('.');
  if (gl.length !== tl.length) return false;
  if (!gl.every((label, i) => labelGlob(label).test(tl[i]!))) return false;
  return t.path.startsWith(g.path);
}

function splitImage(s: string): { host: string; port: string; path: string } | undefined {
  const rest = s.replace(/^[a-z]+:\/\//i, '');
  const slash = rest.indexOf('/');
  const hostPort = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : rest.slice(slash);
  const m = /^([^:]+)(?::(\d+))?$/.exec(hostPort);
  if (!m) return undefined;
  return { host: m[1]!, port: m[2] ?? '', path };
}

function labelGlob(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '[^.]*';
    else if (c === '?') re += '[^.]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) return /$^/; // a malformed class matches nothing, as filepath.Match errs
      const body = glob.slice(i + 1, end);
      const negated = body.startsWith('^') || body.startsWith('!');
      re += `[${negated ? '^' : ''}${(negated ? body.slice(1) : body).replace(/\\/g, '\\\\')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration string ("1h30m", "10s", "0") in milliseconds, or undefined if malformed. */
export function parseGoDuration(s: string): number | undefined {
  if (s === '0') return 0;
  const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== s) return undefined;
  return parts.reduce((ms, p) => ms + Number(p[1]) * UNIT_MS[p[2]!]!, 0);
}

function configError(path: string, why: string) {
  return invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `credential provider config ${path}: ${why}`);
}
