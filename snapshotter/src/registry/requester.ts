import type { HostCapability, RegistryHost } from './hosts.js';
import type { RepositoryRef } from './reference.js';
import type { HttpRequest, HttpResponse } from './http.js';

/** A request against one repository; the client picks the host, adds auth and retries. */
export interface RepoRequest {
  repo: RepositoryRef;
  /** The part after `/v2/<name>/`, e.g. `blobs/sha256:…` or `manifests/latest`. */
  path: string;
  method: HttpRequest['method'];
  capability: HostCapability;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  signal?: AbortSignal;
}

/** A request to an absolute URL on a known host (upload session `Location`s). */
export interface HostRequest {
  repo: RepositoryRef;
  host: RegistryHost;
  url: URL;
  method: HttpRequest['method'];
  push: boolean;
  headers?: Record<string, string>;
  body?: HttpRequest['body'];
  signal?: AbortSignal;
}

export interface RepoResponse extends HttpResponse {
  host: RegistryHost;
  /** A final 401/403 to a request that carried credentials (every source's was tried). */
  authRefused?: boolean;
}

/** The seam between the protocol helpers (manifests, blobs, uploads, referrers) and the client. */
export interface Requester {
  request(req: RepoRequest): Promise<RepoResponse>;
  send(req: HostRequest): Promise<RepoResponse>;
}

/** `registry <host> repository <name>` — the prefix of every message about a repository. */
export function describeRepo(repo: RepositoryRef, host?: RegistryHost): string {
  return `registry ${host?.host ?? repo.domain} repository ${repo.repository}`;
}
