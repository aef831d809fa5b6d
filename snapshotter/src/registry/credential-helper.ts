/**
 * Docker credential helpers (`credHelpers` / `credsStore` in config.json): the program
 * `docker-credential-<name>` is run with the argument `get`, the registry host on stdin, and
 * answers `{"ServerURL","Username","Secret"}` on stdout; `Username` "<token>" marks an identity
 * token. A helper that knows nothing of the host says "credentials not found" and exits non-zero.
 */
import { invalidArgument } from '../errors/index.js';
import { CredentialCache, type Credential, type CredentialStore } from './credentials.js';
import { pluginBadOutput, pluginFailed, runPlugin } from './exec-plugin.js';

export interface CredentialHelperOptions {
  /** Deadline of one helper run. */
  timeoutMs?: number;
  /** How long an answer is reused before the helper is asked again. */
  cacheMs?: number;
  /** Environment for the helper (PATH finds it); defaults to the daemon's. */
  env?: NodeJS.ProcessEnv;
  nowMs?: () => number;
}

const MAX_OUTPUT_BYTES = 64 * 1024;
const NOT_FOUND = /credentials not found/i;

/** One `docker-credential-<name>` program. */
export class DockerCredentialHelper implements CredentialStore {
  readonly program: string;
  #opts: CredentialHelperOptions;
  #cache: CredentialCache;

  constructor(name: string, opts: CredentialHelperOptions = {}) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
      throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `credential helper name "${name}" must be letters, digits, "_", "." or "-"`);
    }
    this.program = `docker-credential-${name}`;
    this.#opts = opts;
    this.#cache = new CredentialCache(opts.nowMs);
  }

  async get(host: string): Promise<Credential | undefined> {
    return this.#cache.get(host, async () => ({ cred: await this.#ask(host), ttlMs: this.#opts.cacheMs ?? 60_000 }));
  }

  async #ask(host: string): Promise<Credential | undefined> {
    const what = `credential helper ${this.program} for ${host}`;
    const res = await runPlugin({
      command: this.program, args: ['get'], stdin: host, env: this.#opts.env,
      timeoutMs: this.#opts.timeoutMs ?? 10_000, maxOutputBytes: MAX_OUTPUT_BYTES, what,
    });
    if (res.code !== 0) {
      if (NOT_FOUND.test(res.stdout)) return undefined;
      throw pluginFailed(what, `exited with status ${res.code} (its output is not shown: it may hold secrets)`);
    }
    let doc: { Username?: unknown; Secret?: unknown };
    try {
      doc = JSON.parse(res.stdout) as typeof doc;
    } catch {
      throw pluginBadOutput(what, 'answer is not JSON');
    }
    if (typeof doc !== 'object' || doc === null) throw pluginBadOutput(what, 'answer is not a JSON object');
    const username = typeof doc.Username === 'string' ? doc.Username : '';
    if (typeof doc.Secret !== 'string') throw pluginBadOutput(what, 'answer has no "Secret" string');
    if (doc.Secret === '' && username === '') return undefined;
    if (username === '<token>') return { type: 'identity_token', username: '', token: doc.Secret };
    return { type: 'basic', username, password: doc.Secret };
  }
}
