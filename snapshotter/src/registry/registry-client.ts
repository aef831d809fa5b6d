/**
 * The registry client a daemon keeps for its lifetime: it caches host resolution (hosts.toml),
 * connection pools and auth tokens, so the lazy read path can call `fetchBlob(repo, digest,
 * {range})` for every FUSE miss cheaply. Nothing here logs on the hot path.
 */
import { ClipError } from '../errors/index.js';
import { sharedSilentLogger, type Logger } from '../log/index.js';
import { Authorizer } from './authorizer.js';
import { pushBlob, type BlobSource, type PushBlobOptions } from './blob-upload.js';
import { fetchBlob, fetchBlobBytes, statBlob, type BlobStream, type FetchBlobOptions } from './blobs.js';
import { KubeletCredentialProviders } from './credential-provider.js';
import { ChainedCredentials, StaticCredentials, type Credential, type CredentialStore } from './credentials.js';
import { DockerConfigCredentials } from './docker-config.js';
import { resolveHosts, type RegistryHost } from './hosts.js';
import { fetchManifest, pushManifest, type FetchedManifest } from './manifests.js';
import type { Descriptor, ImageManifest, Platform } from './media-types.js';
import { DEFAULT_PLATFORM, formatPlatform, parsePlatform, selectPlatformManifest } from './platform.js';
import { formatReference, parseReference, toRepositoryRef, type ImageReference, type RepositoryRef } from './reference.js';
import { listReferrers, pushArtifact, type PushArtifactOptions } from './referrers.js';
import type { HostRequest, RepoRequest, RepoResponse, Requester } from './requester.js';
import { unavailable } from './registry-errors.js';
import type { HttpResponse } from './http.js';
import { Transport } from './transport.js';
import { recordRegistryAuthFailure } from '../telemetry/metrics.js';

/** Retries after a 401: learn the scheme, then replace a stale token or try the next Basic credential. */
const MAX_AUTH_RETRIES = 3;

export interface RegistryClientOptions {
  /** containerd-style hosts directory (`[registry] config_path`). */
  configPath?: string;
  /** Plain HTTP for registries without a hosts.toml (`--plain-http`). */
  plainHttp?: boolean;
  /** Path of a docker `config.json` to read credentials from (auths, credHelpers, credsStore). */
  dockerConfig?: string;
  /** Sources asked before every other, in order (e.g. credentials captured from CRI pulls). */
  credentialSources?: CredentialStore[];
  /** Explicit credentials by host, or any store; consulted after `credentialSources`. */
  credentials?: Record<string, Credential> | CredentialStore;
  /** Kubelet credential-provider plugins; asked after explicit credentials, before the docker config. */
  credentialProviders?: { configPath: string; binDir: string };
  /** Deadline of one credential helper or provider run. */
  credentialPluginTimeoutMs?: number;
  /** Platform picked from indexes: `os/arch[/variant]`; default linux/amd64. */
  platform?: string | Platform;
  /** Header and idle-body timeout. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  maxRetries?: number;
  retryBaseDelayMs?: number;
  maxRetryAfterMs?: number;
  logger?: Logger;
  /** Clock for token expiry; tests inject one. */
  nowMs?: () => number;
  /** Waits between retries; tests inject one (see TransportOptions.sleep). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** An image resolved to one platform's manifest. */
export interface ResolvedImage {
  reference: ImageReference;
  /** What the tag (or digest) points at: an index or the manifest itself. */
  root: Descriptor;
  /** The platform-specific manifest. */
  descriptor: Descriptor;
  manifest: ImageManifest;
}

type RepoArg = string | RepositoryRef;

/** An OCI distribution client; create one per daemon and share it. */
export class RegistryClient implements Requester {
  #transport: Transport;
  #auth: Authorizer;
  #hosts = new Map<string, Promise<RegistryHost[]>>();
  #opts: RegistryClientOptions;
  #platform: Platform;
  #logger: Logger;

  constructor(opts: RegistryClientOptions = {}) {
    this.#opts = opts;
    this.#logger = opts.logger ?? sharedSilentLogger();
    this.#platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform ?? DEFAULT_PLATFORM;
    this.#transport = new Transport({
      connectTimeoutMs: opts.connectTimeoutMs,
      headersTimeoutMs: opts.timeoutMs,
      bodyTimeoutMs: opts.timeoutMs,
      maxRetries: opts.maxRetries,
      retryBaseDelayMs: opts.retryBaseDelayMs,
      maxRetryAfterMs: opts.maxRetryAfterMs,
      logger: this.#logger,
      sleep: opts.sleep,
    });
    this.#auth = new Authorizer({ transport: this.#transport, credentials: credentialStore(opts), nowMs: opts.nowMs });
  }

  /** Fetch what a reference points at (index or manifest), verified. */
  async getManifest(ref: string | ImageReference, signal?: AbortSignal): Promise<FetchedManifest> {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    return fetchManifest(this, r, r.digest ?? r.tag ?? 'latest', signal);
  }

  /** Fetch a manifest of a repository by tag or digest. */
  async fetchManifest(repo: RepoArg, tagOrDigest: string, signal?: AbortSignal): Promise<FetchedManifest> {
    return fetchManifest(this, toRepositoryRef(repo), tagOrDigest, signal);
  }

  /** Resolve a reference to its root descriptor (tag → digest). */
  async resolve(ref: string | ImageReference, signal?: AbortSignal): Promise<{ reference: ImageReference; descriptor: Descriptor }> {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    return { reference: r, descriptor: (await this.getManifest(r, signal)).descriptor };
  }

  /** Resolve a reference to the manifest for the configured (or given) platform. */
  async resolveImage(ref: string | ImageReference, opts: { platform?: string | Platform; signal?: AbortSignal } = {}): Promise<ResolvedImage> {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    const platform = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform ?? this.#platform;
    const root = await this.getManifest(r, opts.signal);
    if (root.type === 'manifest') return { reference: r, root: root.descriptor, descriptor: root.descriptor, manifest: root.manifest };
    const picked = selectPlatformManifest(root.index.manifests, platform);
    if (!picked) {
      throw new ClipError('not_found', 'CLIP_REGISTRY_PLATFORM_NOT_FOUND', `image ${formatReference(r)}: no manifest for platform ${formatPlatform(platform)}: not found`);
    }
    const child = await fetchManifest(this, r, picked.digest, opts.signal);
    if (child.type !== 'manifest') {
      throw new ClipError('data_corrupt', 'CLIP_REGISTRY_MANIFEST_INVALID', `image ${formatReference(r)}: ${picked.digest} is a nested index`);
    }
    return { reference: r, root: root.descriptor, descriptor: child.descriptor, manifest: child.manifest };
  }

  /** Open a blob download: whole (digest-verified while streaming) or a byte range. */
  async fetchBlob(repo: RepoArg, digest: string, opts: FetchBlobOptions = {}): Promise<BlobStream> {
    return fetchBlob(this, toRepositoryRef(repo), digest, opts);
  }

  /** Fetch a small blob into memory, verified; refuses more than `maxBytes`. */
  async fetchBlobBytes(repo: RepoArg, digest: string, opts: { maxBytes?: number; signal?: AbortSignal } = {}): Promise<Buffer> {
    return fetchBlobBytes(this, toRepositoryRef(repo), digest, opts.maxBytes ?? 64 * 1024 * 1024, opts.signal);
  }

  /** The blob's size if the registry has it, else undefined. */
  async statBlob(repo: RepoArg, digest: string, signal?: AbortSignal): Promise<{ size: number } | undefined> {
    return statBlob(this, toRepositoryRef(repo), digest, 'pull', signal);
  }

  /** Upload a blob unless present; returns its descriptor. */
  async pushBlob(repo: RepoArg, source: BlobSource, opts: PushBlobOptions = {}): Promise<Descriptor> {
    return pushBlob(this, toRepositoryRef(repo), source, opts);
  }

  /** PUT a manifest under a tag, or under its digest when no tag is given. */
  async pushManifest(repo: RepoArg, bytes: Buffer, mediaType: string, tag?: string, signal?: AbortSignal): Promise<Descriptor> {
    return (await pushManifest(this, toRepositoryRef(repo), bytes, mediaType, tag, signal)).descriptor;
  }

  /** Push an artifact whose `subject` is `opts.subject`, keeping the referrers tag fallback current. */
  async pushArtifact(opts: Omit<PushArtifactOptions, 'repo'> & { repo: RepoArg }): Promise<Descriptor> {
    return pushArtifact(this, { ...opts, repo: toRepositoryRef(opts.repo) });
  }

  /** Referrers of a subject (referrers API, else the `sha256-<hex>` tag), filtered by artifactType. */
  async findReferrers(repo: RepoArg, subjectDigest: string, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[]> {
    return listReferrers(this, toRepositoryRef(repo), subjectDigest, artifactType, signal);
  }

  /** Close pooled connections. */
  async close(): Promise<void> {
    await this.#transport.close();
  }

  /** Send a repository request, trying mirrors in order and the upstream last. */
  async request(req: RepoRequest): Promise<RepoResponse> {
    const hosts = (await this.#hostsFor(req.repo.domain)).filter((h) => h.capabilities.includes(req.capability));
    if (hosts.length === 0) throw unavailable(`registry ${req.repo.domain}: no host configured with capability "${req.capability}"`);
    const candidates = req.capability === 'push' ? hosts.slice(0, 1) : hosts;
    for (let i = 0; ; i++) {
      const host = candidates[i]!;
      const last = i === candidates.length - 1;
      const url = new URL(`${host.scheme}://${host.host}${host.path}/${req.repo.repository}/${req.path}`);
      for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
      if (host.mirror) url.searchParams.set('ns', req.repo.domain);
      try {
        const res = await this.send({ ...req, host, url, push: req.capability === 'push' });
        if (last || !tryNextHost(res)) return res;
        await res.body.dump().catch(() => undefined);
      } catch (err) {
        if (last || !(err instanceof ClipError) || req.signal?.aborted) throw err;
      }
      this.#logger.debug({ source: 'registry', host: host.host }, 'registry mirror failed, trying next host');
    }
  }

  /**
   * Send to one host with authorization. A 401 that taught us something (the scheme, a stale
   * token, another or a changed Basic credential) is retried, at most MAX_AUTH_RETRIES times; a
   * final 401/403 is counted and marked `authRefused` when credentials were sent.
   */
  async send(req: HostRequest): Promise<RepoResponse> {
    const scopes = [`repository:${req.repo.repository}:${req.push ? 'pull,push' : 'pull'}`];
    for (let attempt = 0; ; attempt++) {
      const auth = await this.#auth.authorization(req.host, req.repo.repository, scopes, req.signal);
      const headers: Record<string, string> = { ...req.host.headers, ...req.headers, ...(auth ? { authorization: auth } : {}) };
      const res = await this.#transport.send({ url: req.url, method: req.method, endpoint: req.host, headers, body: req.body, signal: req.signal });
      const retry = res.status === 401 && attempt < MAX_AUTH_RETRIES && (await this.#auth.challenged(req.host, req.repo.repository, res.headers['www-authenticate'], auth));
      if (!retry) {
        if (res.status === 401 || res.status === 403) {
          recordRegistryAuthFailure('request', res.status);
          return { ...res, host: req.host, authRefused: auth !== undefined };
        }
        return { ...res, host: req.host };
      }
      await res.body.dump().catch(() => undefined);
    }
  }

  async #hostsFor(domain: string): Promise<RegistryHost[]> {
    let hosts = this.#hosts.get(domain);
    if (!hosts) {
      hosts = resolveHosts(domain, { configPath: this.#opts.configPath, plainHttp: this.#opts.plainHttp });
      hosts.catch(() => this.#hosts.delete(domain));
      this.#hosts.set(domain, hosts);
    }
    return hosts;
  }
}

function tryNextHost(res: HttpResponse): boolean {
  return res.status === 404 || res.status === 401 || res.status === 403 || res.status === 429 || res.status >= 500;
}

/**
 * The credential sources of a client, in the order they are asked: `credentialSources` (CRI),
 * explicit credentials, kubelet credential providers, the docker config.json.
 */
export function credentialStore(opts: RegistryClientOptions): CredentialStore | undefined {
  const stores: CredentialStore[] = [...(opts.credentialSources ?? [])];
  if (opts.credentials) {
    stores.push(typeof (opts.credentials as CredentialStore).get === 'function' ? (opts.credentials as CredentialStore) : new StaticCredentials(opts.credentials as Record<string, Credential>));
  }
  const timeoutMs = opts.credentialPluginTimeoutMs;
  if (opts.credentialProviders) {
    stores.push(new KubeletCredentialProviders({ ...opts.credentialProviders, ...(timeoutMs ? { timeoutMs } : {}), ...(opts.nowMs ? { nowMs: opts.nowMs } : {}) }));
  }
  if (opts.dockerConfig) stores.push(new DockerConfigCredentials(opts.dockerConfig, { ...(timeoutMs ? { timeoutMs } : {}), ...(opts.nowMs ? { nowMs: opts.nowMs } : {}) }));
  return stores.length === 0 ? undefined : new ChainedCredentials(stores);
}
