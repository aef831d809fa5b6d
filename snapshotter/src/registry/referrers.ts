/**
 * OCI 1.1 referrers: `GET /v2/<name>/referrers/<digest>` where the registry has it, else the tag
 * schema fallback — an OCI index tagged `sha256-<hex>` listing the subject's referrers, which the
 * pusher updates (read, add, PUT) whenever the registry does not answer with `OCI-Subject`.
 * The fallback update is read-modify-write: concurrent pushers for one subject can lose an entry.
 */
import { ClipError } from '../errors/index.js';
import { pushBlob, type BlobSource } from './blob-upload.js';
import { parseDigest } from './digest.js';
import { fetchManifest, isMissing, parseManifest, pushManifest, referrersTag } from './manifests.js';
import { EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_EMPTY, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, type Descriptor, type ImageIndex, type ImageManifest } from './media-types.js';
import type { RepositoryRef } from './reference.js';
import { describeRepo, type Requester } from './requester.js';
import { statusError } from './registry-errors.js';
import { readLimited } from './response-body.js';

export interface ArtifactBlob {
  mediaType: string;
  data?: Buffer;
  path?: string;
  annotations?: Record<string, string>;
}

export interface PushArtifactOptions {
  repo: RepositoryRef;
  subject: Descriptor;
  artifactType: string;
  blobs: ArtifactBlob[];
  annotations?: Record<string, string>;
  signal?: AbortSignal;
}

/** Registries (by requester, then domain) that answered the referrers API: no tag fallback asked beside it. */
const answeredApi = new WeakMap<Requester, Set<string>>();

/**
 * List the referrers of a subject, optionally only one artifactType: the referrers API, or the tag
 * fallback where it answers 404. Until a registry is known to answer the API, the fallback tag is
 * asked beside it — one round trip instead of two on a registry without the API (a cold node's
 * first index look-up waits for it; issue 15, pull latency) — and its answer used only after a 404.
 */
export async function listReferrers(rq: Requester, repo: RepositoryRef, subjectDigest: string, artifactType?: string, signal?: AbortSignal): Promise<Descriptor[]> {
  parseDigest(subjectDigest);
  const knowsApi = answeredApi.get(rq)?.has(repo.domain) === true;
  const tagAbort = new AbortController();
  const stopTag = (): void => tagAbort.abort();
  signal?.addEventListener('abort', stopTag, { once: true });
  const tag = knowsApi ? undefined : readFallbackIndex(rq, repo, subjectDigest, AbortSignal.any([tagAbort.signal, ...(signal ? [signal] : [])]));
  tag?.catch(() => undefined); // used only after a 404; otherwise abandoned
  try {
    const res = await rq.request({
      repo, path: `referrers/${subjectDigest}`, method: 'GET', capability: 'pull', signal,
      query: artifactType ? { artifactType } : {}, headers: { accept: MEDIA_TYPE_OCI_INDEX },
    });
    const what = `${describeRepo(repo, res.host)} referrers of ${subjectDigest}`;
    let index: ImageIndex;
    if (res.status === 404) {
      await res.body.dump().catch(() => undefined);
      index = await (tag ?? readFallbackIndex(rq, repo, subjectDigest, signal));
    } else if (res.status === 200) {
      stopTag();
      const bytes = await readLimited(res.body, 4 * 1024 * 1024, what);
      const parsed = parseManifest(bytes, MEDIA_TYPE_OCI_INDEX, subjectDigest, what);
      if (parsed.type !== 'index') throw new ClipError('data_corrupt', 'CLIP_REGISTRY_MANIFEST_INVALID', `${what}: not an index`);
      index = parsed.index;
      let known = answeredApi.get(rq);
      if (!known) answeredApi.set(rq, (known = new Set()));
      known.add(repo.domain);
    } else {
      throw await statusError(res, what);
    }
    return index.manifests.filter((d) => artifactType === undefined || d.artifactType === artifactType);
  } finally {
    stopTag();
    signal?.removeEventListener('abort', stopTag);
  }
}

async function readFallbackIndex(rq: Requester, repo: RepositoryRef, subjectDigest: string, signal?: AbortSignal): Promise<ImageIndex> {
  try {
    const found = await fetchManifest(rq, repo, referrersTag(subjectDigest), signal);
    if (found.type === 'index') return found.index;
    throw new ClipError('data_corrupt', 'CLIP_REGISTRY_MANIFEST_INVALID', `${describeRepo(repo)} tag ${referrersTag(subjectDigest)}: not an index`);
  } catch (err) {
    if (isMissing(err)) return { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] };
    throw err;
  }
}

/** Push an ORAS-style artifact (empty config, one layer per blob) that refers to `subject`. */
export async function pushArtifact(rq: Requester, opts: PushArtifactOptions): Promise<Descriptor> {
  const { repo, signal } = opts;
  const config = await pushBlob(rq, repo, { type: 'bytes', data: EMPTY_JSON_BYTES }, { mediaType: MEDIA_TYPE_OCI_EMPTY, signal });
  const layers: Descriptor[] = [];
  for (const blob of opts.blobs) {
    const source: BlobSource = blob.data !== undefined ? { type: 'bytes', data: blob.data } : { type: 'file', path: requirePath(blob) };
    const desc = await pushBlob(rq, repo, source, { mediaType: blob.mediaType, signal });
    layers.push(blob.annotations ? { ...desc, annotations: blob.annotations } : desc);
  }
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    artifactType: opts.artifactType,
    config,
    layers,
    subject: { mediaType: opts.subject.mediaType, digest: opts.subject.digest, size: opts.subject.size },
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const pushed = await pushManifest(rq, repo, bytes, MEDIA_TYPE_OCI_MANIFEST, undefined, signal);
  const descriptor: Descriptor = {
    ...pushed.descriptor,
    artifactType: opts.artifactType,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  if (pushed.ociSubject === undefined) await addToFallbackIndex(rq, repo, opts.subject.digest, descriptor, signal);
  return descriptor;
}

function requirePath(blob: ArtifactBlob): string {
  if (blob.path === undefined) {
    throw new ClipError('invalid_argument', 'CLIP_REGISTRY_REJECTED', `artifact blob ${blob.mediaType}: neither data nor path given`);
  }
  return blob.path;
}

/** Add a referrer to the subject's `sha256-<hex>` index (no-op when already listed). */
export async function addToFallbackIndex(rq: Requester, repo: RepositoryRef, subjectDigest: string, referrer: Descriptor, signal?: AbortSignal): Promise<void> {
  const current = await readFallbackIndex(rq, repo, subjectDigest, signal);
  if (current.manifests.some((d) => d.digest === referrer.digest)) return;
  const next: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [...current.manifests, referrer] };
  await pushManifest(rq, repo, Buffer.from(JSON.stringify(next)), MEDIA_TYPE_OCI_INDEX, referrersTag(subjectDigest), signal);
}
