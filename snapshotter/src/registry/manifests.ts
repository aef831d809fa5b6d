import { ClipError, dataCorrupt } from '../errors/index.js';
import { parseDigest, sha256Digest, verifyDigest } from './digest.js';
import {
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  isIndexMediaType,
  isManifestMediaType,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from './media-types.js';
import type { RepositoryRef } from './reference.js';
import { describeRepo, type Requester } from './requester.js';
import { header } from './headers.js';
import { statusError } from './registry-errors.js';
import { readLimited } from './response-body.js';

/** Manifests larger than this are refused, as containerd does. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** A manifest as fetched: its verified bytes, descriptor and parsed form. */
export type FetchedManifest =
  | { type: 'index'; descriptor: Descriptor; bytes: Buffer; index: ImageIndex }
  | { type: 'manifest'; descriptor: Descriptor; bytes: Buffer; manifest: ImageManifest };

/** GET a manifest by tag or digest; by-digest fetches (and any Docker-Content-Digest) are verified. */
export async function fetchManifest(rq: Requester, repo: RepositoryRef, reference: string, signal?: AbortSignal): Promise<FetchedManifest> {
  const byDigest = reference.includes(':');
  if (byDigest) parseDigest(reference);
  const res = await rq.request({
    repo, path: `manifests/${reference}`, method: 'GET', capability: byDigest ? 'pull' : 'resolve',
    headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') }, signal,
  });
  const what = `${describeRepo(repo, res.host)} manifest ${reference}`;
  if (res.status !== 200) throw await statusError(res, what);
  const bytes = await readLimited(res.body, MAX_MANIFEST_BYTES, what, res.headers);
  if (byDigest) verifyDigest(bytes, reference, what);
  const digest = byDigest ? reference : sha256Digest(bytes);
  const claimed = header(res, 'docker-content-digest');
  if (!byDigest && claimed?.startsWith('sha256:') && claimed !== digest) {
    throw dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${what}: content hashes to ${digest}, registry says ${claimed}`);
  }
  return parseManifest(bytes, header(res, 'content-type'), digest, what);
}

/** Parse manifest bytes; the media type comes from Content-Type, else the document itself. */
export function parseManifest(bytes: Buffer, contentType: string | undefined, digest: string, what: string): FetchedManifest {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalid(`${what}: not valid JSON`, err);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalid(`${what}: not a JSON object`);
  const mediaType = pickMediaType(contentType, doc);
  const descriptor: Descriptor = { mediaType, digest, size: bytes.length };
  if (typeof doc.artifactType === 'string') descriptor.artifactType = doc.artifactType;
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc.manifests)) throw invalid(`${what}: index without a "manifests" list`);
    doc.manifests.forEach((d, i) => checkDescriptor(d, `${what}: manifests[${i}]`));
    return { type: 'index', descriptor, bytes, index: doc as unknown as ImageIndex };
  }
  if (isManifestMediaType(mediaType)) {
    checkDescriptor(doc.config, `${what}: config`);
    if (!Array.isArray(doc.layers)) throw invalid(`${what}: manifest without a "layers" list`);
    doc.layers.forEach((d, i) => checkDescriptor(d, `${what}: layers[${i}]`));
    return { type: 'manifest', descriptor, bytes, manifest: doc as unknown as ImageManifest };
  }
  throw invalid(`${what}: unsupported manifest media type "${mediaType}"`);
}

function pickMediaType(contentType: string | undefined, doc: Record<string, unknown>): string {
  const fromHeader = contentType?.split(';')[0]?.trim();
  if (fromHeader && MANIFEST_MEDIA_TYPES.includes(fromHeader)) return fromHeader;
  if (typeof doc.mediaType === 'string') return doc.mediaType;
  if (Array.isArray(doc.manifests)) return MEDIA_TYPE_OCI_INDEX;
  if (Array.isArray(doc.layers)) return MEDIA_TYPE_OCI_MANIFEST;
  return fromHeader ?? 'unknown';
}

function checkDescriptor(d: unknown, where: string): void {
  const x = d as Partial<Descriptor> | null;
  if (typeof x !== 'object' || x === null || typeof x.mediaType !== 'string' || typeof x.digest !== 'string'
    || typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) {
    throw invalid(`${where}: not a valid descriptor`);
  }
  try {
    parseDigest(x.digest);
  } catch (err) {
    throw invalid(`${where}: bad digest`, err);
  }
}

function invalid(message: string, cause?: unknown): ClipError {
  return new ClipError('data_corrupt', 'CLIP_REGISTRY_MANIFEST_INVALID', message, { cause });
}

/** PUT a manifest under a tag or its digest; returns its descriptor and the `OCI-Subject` header. */
export async function pushManifest(
  rq: Requester, repo: RepositoryRef, bytes: Buffer, mediaType: string, reference?: string, signal?: AbortSignal,
): Promise<{ descriptor: Descriptor; ociSubject: string | undefined }> {
  const digest = sha256Digest(bytes);
  const ref = reference ?? digest;
  const res = await rq.request({
    repo, path: `manifests/${ref}`, method: 'PUT', capability: 'push', headers: { 'content-type': mediaType }, body: bytes, signal,
  });
  const what = `${describeRepo(repo, res.host)} push manifest ${ref} (${digest})`;
  if (res.status !== 201 && res.status !== 200) throw await statusError(res, what);
  await res.body.dump().catch(() => undefined);
  const claimed = header(res, 'docker-content-digest');
  if (claimed !== undefined && claimed !== digest) {
    throw dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${what}: registry stored ${claimed}`);
  }
  return { descriptor: { mediaType, digest, size: bytes.length }, ociSubject: header(res, 'oci-subject') };
}

/** A not-found error for a missing referrers tag or similar optional object. */
export function isMissing(err: unknown): boolean {
  return err instanceof ClipError && err.kind === 'not_found';
}

/** `sha256-<hex>`: the tag under which the referrers fallback index of a subject lives. */
export function referrersTag(subjectDigest: string): string {
  const { algorithm, hex } = parseDigest(subjectDigest);
  return `${algorithm.slice(0, 32)}-${hex.slice(0, 64)}`;
}
