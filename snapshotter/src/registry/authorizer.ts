/**
 * Registry authentication per host: learns the scheme from a 401's `WWW-Authenticate`, then sends
 * Basic credentials or a bearer token fetched from the challenge's realm (anonymous, basic,
 * identity-token refresh grant). Tokens are cached per host, service and scope until shortly
 * before they expire; a 401 with a cached token drops it so the retry fetches a fresh one.
 */
import { ClipError } from '../errors/index.js';
import type { CredentialStore, Credential } from './credentials.js';
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

  constructor(opts: AuthorizerOptions) {
    this.#transport = opts.transport;
    this.#credentials = opts.credentials;
    this.#now = opts.nowMs ?? Date.now;
  }

  /** The `Authorization` value for a request needing `scopes`, or undefined before any challenge. */
  async authorization(host: RegistryHost, scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.#challenges.get(hostKey(host));
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const cred = await this.#credentials?.get(host.host, repositoryOf(scopes));
      return cred?.type === 'basic' ? basicHeader(cred) : undefined;
    }
    const token = await this.#token(host, ch, scopes, signal);
    return `Bearer ${token.token}`;
  }

  /** Learn from a 401. True when retrying with (new) credentials can help. */
  async challenged(host: RegistryHost, wwwAuthenticate: string | string[] | undefined, sent: string | undefined, repository?: string): Promise<boolean> {
    const all = parseWwwAuthenticate(wwwAuthenticate);
    const ch = all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic');
    if (!ch) return false;
    this.#challenges.set(hostKey(host), ch);
    if (ch.scheme === 'bearer') {
      if (sent === undefined) return true;
      const stale = sent.slice('Bearer '.length);
      let dropped = false;
      for (const [key, t] of this.#tokens) {
        if (t.token === stale) dropped = this.#tokens.delete(key) || dropped;
      }
      return dropped;
    }
    return sent === undefined && (await this.#credentials?.get(host.host, repository))?.type === 'basic';
  }

  async #token(host: RegistryHost, ch: AuthChallenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const allScopes = [...new Set([...scopes, ...(ch.params.scope ? ch.params.scope.split(' ') : [])])].sort();
    const key = `${hostKey(host)}|${ch.params.realm ?? ''}|${ch.params.service ?? ''}|${allScopes.join(' ')}`;
    const cached = this.#tokens.get(key);
    if (cached && this.#now() < cached.refreshAtMs) return cached;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#fetchToken(host, ch, allScopes, signal).finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    const fresh = await pending;
    this.#tokens.set(key, fresh);
    return fresh;
  }

  async #fetchToken(host: RegistryHost, ch: AuthChallenge, scopes: string[], signal?: AbortSignal): Promise<CachedToken> {
    const realm = parseRealm(host, ch);
    const cred = await this.#credentials?.get(host.host, repositoryOf(scopes));
    if (cred?.type === 'registry_token') return { token: cred.token, refreshAtMs: Number.POSITIVE_INFINITY };
    const endpoint: Endpoint = realm.host === host.host ? host : { scheme: realm.protocol === 'http:' ? 'http' : 'https', host: realm.host, skipVerify: false, caPem: [] };
    const what = `registry ${host.host}: token from ${realm.host} for scope "${scopes.join(' ')}"`;
    const started = this.#now();
    const res = cred?.type === 'identity_token'
      ? await this.#transport.send({ url: realm, method: 'POST', endpoint, signal, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: refreshForm(ch, scopes, cred.token) })
      : await this.#transport.send({ url: tokenUrl(realm, ch, scopes), method: 'GET', endpoint, signal, headers: cred?.type === 'basic' ? { authorization: basicHeader(cred) } : {} });
    if (res.status === 401 || res.status === 403) {
      await res.body.dump().catch(() => undefined);
      throw new ClipError('failed_precondition', 'CLIP_REGISTRY_UNAUTHORIZED', `${what}: ${cred ? 'credentials refused' : 'anonymous access refused'} (HTTP ${res.status})`);
    }
    if (res.status !== 200) throw await statusError(res, what);
    return parseTokenResponse(await readLimited(res.body, 1024 * 1024, what), what, started);
  }
}

function hostKey(host: RegistryHost): string {
  return `${host.scheme}://${host.host}`;
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

/** The repository of the first `repository:NAME:ACTIONS` scope, for credential sources that match images. */
function repositoryOf(scopes: string[]): string | undefined {
  const m = /^repository:(.+):[^:]*$/.exec(scopes[0] ?? '');
  return m?.[1];
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
