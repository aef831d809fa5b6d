import { invalidArgument } from '../errors/index.js';

/** Where a repository lives: the registry domain as users write it, and the repository path. */
export interface RepositoryRef {
  domain: string;
  repository: string;
}

/** A fully normalised image reference; at least one of `tag` and `digest` is set. */
export interface ImageReference extends RepositoryRef {
  tag?: string;
  digest?: string;
}

export const DOCKER_HUB_DOMAIN = 'docker.io';
const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const MAX_NAME_LENGTH = 255;

const bad = (ref: string, why: string) =>
  invalidArgument('CLIP_REGISTRY_INVALID_REFERENCE', `image reference "${ref}": ${why}`);

/**
 * Parse a reference the way containerd and docker normalise it: `alpine` is
 * `docker.io/library/alpine:latest`; a first component with a dot, a colon or `localhost` is a domain.
 */
export function parseReference(ref: string): ImageReference {
  if (ref.length === 0 || ref.length > 4096) throw bad(ref, 'empty or too long');
  const at = ref.indexOf('@');
  const digest = at >= 0 ? ref.slice(at + 1) : undefined;
  let rest = at >= 0 ? ref.slice(0, at) : ref;
  if (digest !== undefined && !DIGEST.test(digest)) throw bad(ref, 'malformed digest');
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(ref, 'malformed tag');
  }
  const repo = parseRepositoryName(rest, ref);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { ...repo, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

/** Parse `[domain/]path` without tag or digest (`localhost:5000/foo`, `alpine`). */
export function parseRepository(name: string): RepositoryRef {
  return parseRepositoryName(name, name);
}

function parseRepositoryName(name: string, ref: string): RepositoryRef {
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : '';
  const isDomain = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  let domain = isDomain ? first : DOCKER_HUB_DOMAIN;
  let repository = isDomain ? name.slice(slash + 1) : name;
  if (isDomain && !DOMAIN.test(domain)) throw bad(ref, 'malformed registry domain');
  if (domain === 'index.docker.io') domain = DOCKER_HUB_DOMAIN;
  if (domain === DOCKER_HUB_DOMAIN && !repository.includes('/')) repository = `library/${repository}`;
  if (repository.length === 0 || repository.length > MAX_NAME_LENGTH) throw bad(ref, 'empty or too long repository name');
  for (const part of repository.split('/')) {
    if (!PATH_COMPONENT.test(part)) throw bad(ref, `invalid repository path component "${part}" (lowercase letters, digits and separators only)`);
  }
  return { domain, repository };
}

/** The canonical string form, e.g. `docker.io/library/alpine:latest@sha256:…`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.domain}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

/** The host that serves the distribution API for a domain (`docker.io` → `registry-1.docker.io`). */
export function apiHostOf(domain: string): string {
  return domain === DOCKER_HUB_DOMAIN ? DOCKER_HUB_API_HOST : domain;
}

/** True for registries on the loopback interface, which default to plain HTTP as in containerd. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
  return name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** Accept a `RepositoryRef` or any reference string and return the repository part. */
export function toRepositoryRef(repo: string | RepositoryRef): RepositoryRef {
  if (typeof repo !== 'string') return repo;
  const ref = repo.includes('@') || /:[^/]*$/.test(repo.slice(repo.indexOf('/') + 1)) ? parseReference(repo) : parseRepository(repo);
  return { domain: ref.domain, repository: ref.repository };
}
