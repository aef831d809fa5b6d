/**
 * Registry authentication per host: learns the scheme from a 401's `WWW-Authenticate`, then sends
 * Basic credentials or a bearer token fetched from the challenge's realm (anonymous, basic,
 * identity-token refresh grant). Tokens are cached per host, service and scope until shortly
 * before they expire (`expires_in`); a 401 with a cached token drops it so the retry fetches a
 * fresh one. Credentials are looked up per host and repository on every token fetch (sources
 * re-read what changed); when a source's credential is refused the next source's is tried, and
 * only when all were refused does the caller get CLIP_REGISTRY_CREDENTIALS_REFUSED.
 */
import { ClipError } from '../errors/index.js';
import { recordRegistryAuthFailure } from '../telemetry/metrics.js';
import { credentialCandidates, sameCredential, type CredentialStore, type Credential } from './credentials.js';
import type { RegistryHost } from './hosts.js';
import { statusError, unavailable } from './registry-errors.js';
import { readLimited } from './response-body.js';
import type { Endpoint } from './http.js';
import type { Transport } from './transport.js';
import { parseWwwAuthenticate, type AuthChallenge } from './www-authenticate.js';

export interface AuthorizerOptions {
  transport: Transport;
  credentials?: CredentialStore;
  /** Clock, injectable for tests. */
  nowMs?: () => number;
}

interface CachedToken {
  token: string;
  refreshAtMs: number;
}

const DEFAULT_TOKEN_TTL_S = 60;
const CLIENT_ID = 'clip-snapshotter';

/** Holds challenges and tokens for every host a RegistryClient talks to. */
export class Authorizer {
  #transport: Transport;
  #credentials: CredentialStore | undefined;
  #now: () => number;
  #challenges = new Map<string, AuthChallenge>();
  #tokens = new Map<string, CachedToken>();
  #pending = new Map<string, Promise<CachedToken>>();
  /** Per host and repository: the Basic credential refused last, so the next source's is sent. */
  #refusedBasic = new Map<string, Credential>();

  constructor(opts: AuthorizerOptions) {
    this.#transport = opts.transport;
    this.#credentials = opts.credentials;
    this.#now = opts.nowMs ?? Date.now;
  }

  /** The `Authorization` value for a request on `repository` needing `scopes`, or undefined before any challenge. */
  async authorization(host: RegistryHost, repository: string, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.#challenges.get(hostKey(host));
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const cred = await this.#basicCredential(host, repository);
      return cred ? basicHeader(cred) : undefined;
    }
    const token = await this.#token(host, repository, ch, scopes, signal);
    return `Bearer ${token.token}`;
  }

  /**
   * Learn from a 401 to a request that sent `sent`. True when retrying can help: the first
   * challenge, a cached token to replace, or another (or changed) Basic credential to send.
   */
  async challenged(host: RegistryHost, repository: string, wwwAuthenticate: string | string[] | undefined, sent: string | undefined): Promise<boolean> {
    const all = parseWwwAuthenticate(wwwAuthenticate);
    const ch = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
    if (!ch) return false;
    this.#challenges.set(hostKey(host), ch);
    if (ch.scheme === 'bearer') {
      if (sent === undefined || !sent.startsWith('Bearer ')) return true;
      const stale = sent.slice('Bearer '.length);
      let dropped = false;
      for (const [key, t] of this.#tokens) {
        if (t.token === stale) dropped = this.#tokens.delete(key) || dropped;
      }
      return dropped;
    }
    if (sent === undefined) return (await this.#basicCredential(host, repository)) !== undefined;
    const refused = (await this.#basics(host, repository)).find((c) => basicHeader(c) === sent);
    if (refused) this.#refusedBasic.set(basicKey(host, repository), refused);
    const next = await this.#basicCredential(host, repository);
    if (next !== undefined && basicHeader(next) !== sent) return true;
    // Every source refused: the next request starts again from the best one (it may be fixed).
    this.#refusedBasic.delete(basicKey(host, repository));
    return false;
  }

  async #basics(host: RegistryHost, repository: string): Promise<Extract<Credential, { type: 'basic' }>[]> {
    return (await credentialCandidates(this.#credentials, host.host, repository)).filter((c): c is Extract<Credential, { type: 'basic' }> => c.type === 'basic');
  }

  /** The Basic credential to send: the best one, or the one after the last refused. */
  async #basicCredential(host: RegistryHost, repository: string): Promise<Extract<Credential, { type: 'basic' }> | undefined> {
    const basics = await this.#basics(host, repository);
    const refused = this.#refusedBasic.get(basicKey(host, repository));
    const at = refused ? basics.findIndex((c) => sameCredential(c, refused)) : -1;
    // The refused one was replaced at its source (re-read): start over with what is there now.
    return at < 0 ? basics[0] : basics[at + 1];
  }

  async #token(host: RegistryHost, repository: string, ch: AuthChallenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const allScopes = [...new Set([...scopes, ...(ch.params.scope ? ch.params.scope.split(' ') : [])])].sort();
    const key = `${hostKey(host)}|${ch.params.realm ?? ''}|${ch.params.service ?? ''}|${allScopes.join(' ')}`;
    const cached = this.#tokens.get(key);
    if (cached && this.#now() < cached.refreshAtMs) return cached;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#fetchToken(host, repository, ch, allScopes, signal).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const fresh = await pending;
    this.#tokens.set(key, fresh);
    return fresh;
  }

  async #fetchToken(host: RegistryHost, repository: string, ch: AuthChallenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const realm = parseRealm(host, ch);
    const creds = await credentialCandidates(this.#credentials, host.host, repository);
    const endpoint = realmEndpoint(host, realm);
    const what = `registry ${host.host}: token from ${realm.host} for scope "${scopes.join(' ')}"`;
    let lastStatus = 0;
    // Each source's credential in turn; anonymous only when no source has one.
    for (const cred of creds.length > 0 ? creds : [undefined]) {
      if (cred?.type === 'registry_token') return { token: cred.token, refreshAtMs: Number.POSITIVE_INFINITY };
      const started = this.#now();
      const res = cred?.type === 'identity_token'
        ? await this.#transport.send({ url: realm, method: 'POST', endpoint, signal, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: refreshForm(ch, scopes, cred.token) })
        : await this.#transport.send({ url: tokenUrl(realm, ch, scopes), method: 'GET', endpoint, signal, headers: cred?.type === 'basic' ? { authorization: basicHeader(cred) } : {} });
      if (res.status === 401 || res.status === 403) {
        await res.body.dump().catch(() => undefined);
        lastStatus = res.status;
        continue;
      }
      if (res.status !== 200) throw await statusError(res, what);
      return parseTokenResponse(await readLimited(res.body, 1024 * 1024, what), what, started);
    }
    recordRegistryAuthFailure('token', lastStatus);
    if (creds.length === 0) {
      throw new ClipError('failed_precondition', 'CLIP_REGISTRY_UNAUTHORIZED', `${what}: anonymous access refused (HTTP ${lastStatus}) and no credential source has credentials for it`);
    }
    throw new ClipError('failed_precondition', 'CLIP_REGISTRY_CREDENTIALS_REFUSED', `${what}: credentials refused (HTTP ${lastStatus}) from every source (${creds.length} tried)`);
  }
}

function hostKey(host: RegistryHost): string {
  return `${host.scheme}://${host.host}`;
}

function basicKey(host: RegistryHost, repository: string): string {
  return `${hostKey(host)}/${repository}`;
}

function basicHeader(cred: Extract<Credential, { type: 'basic' }>): string {
  return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
}

function parseRealm(host: RegistryHost, ch: AuthChallenge): URL {
  try {
    const url = new URL(ch.params.realm ?? '');
    if (url.protocol === 'http:' || url.protocol === 'https:') return url;
  } catch {
    // reported below
  }
  throw new ClipError('failed_precondition', 'CLIP_REGISTRY_UNAUTHORIZED', `registry ${host.host}: bearer challenge without a usable realm`);
}

/**
 * Where the token request goes. A realm on another host is reached with the registry host's TLS
 * settings (hosts.toml ca, skip_verify, client certificate), as containerd does with one HTTP
 * client per host: a private registry's token service commonly shares its CA and client auth.
 */
function realmEndpoint(host: RegistryHost, realm: URL): Endpoint {
  if (realm.host === host.host) return host;
  const scheme = realm.protocol === 'http:' ? 'http' : 'https';
  return { scheme, host: realm.host, skipVerify: host.skipVerify, caPem: host.caPem, ...(host.clientCerts ? { clientCerts: host.clientCerts } : {}) };
}

function tokenUrl(realm: URL, ch: AuthChallenge, scopes: string[]): URL {
  const url = new URL(realm);
  if (ch.params.service) url.searchParams.set('service', ch.params.service);
  for (const s of scopes) url.searchParams.append('scope', s);
  return url;
}

function refreshForm(ch: AuthChallenge, scopes: string[], refreshToken: string): Buffer {
  const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: CLIENT_ID });
  if (ch.params.service) form.set('service', ch.params.service);
  if (scopes.length) form.set('scope', scopes.join(' '));
  return Buffer.from(form.toString());
}

function parseTokenResponse(bytes: Buffer, what: string, startedMs: number): CachedToken {
  let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    doc = JSON.parse(bytes.toString('utf8')) as typeof doc;
  } catch (err) {
    throw unavailable(`${what}: token response is not JSON`, err);
  }
  const token = typeof doc.token === 'string' && doc.token ? doc.token : doc.access_token;
  if (typeof token !== 'string' || token === '') throw unavailable(`${what}: token response has no token`);
  const ttlS = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_TTL_S;
  const marginMs = Math.min(10_000, (ttlS * 1000) / 10);
  return { token, refreshAtMs: startedMs + ttlS * 1000 - marginMs };
}
