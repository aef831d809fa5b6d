/**
 * Blob push: HEAD to skip blobs the registry has, then an upload session (POST) finished either
 * monolithically (one PUT with the body) or in chunks (PATCH with Content-Range, then an empty PUT).
 * The digest is computed locally and cross-checked against `Docker-Content-Digest`.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { dataCorrupt, failedPrecondition } from '../errors/index.js';
import { statBlob } from './blobs.js';
import { parseDigest, sha256Digest } from './digest.js';
import type { RegistryHost } from './hosts.js';
import type { Descriptor } from './media-types.js';
import type { RepositoryRef } from './reference.js';
import { describeRepo, type Requester, type RepoResponse } from './requester.js';
import { header } from './headers.js';
import { statusError } from './registry-errors.js';

/** Where blob bytes come from. A stream is uploaded in chunks while it is hashed. */
export type BlobSource =
  | { type: 'bytes'; data: Buffer }
  | { type: 'file'; path: string }
  | { type: 'stream'; stream: Readable };

export interface PushBlobOptions {
  mediaType?: string;
  /** Known digest; skips hashing a file twice and allows the existence check for streams. */
  digest?: string;
  /** Upload in PATCH chunks of this size when the blob is larger; default: one monolithic PUT. */
  chunkSizeBytes?: number;
  signal?: AbortSignal;
}

const DEFAULT_STREAM_CHUNK_BYTES = 8 * 1024 * 1024;

interface Session {
  host: RegistryHost;
  url: URL;
}

/** Upload a blob unless the registry already has it; returns its descriptor. */
export async function pushBlob(rq: Requester, repo: RepositoryRef, source: BlobSource, opts: PushBlobOptions = {}): Promise<Descriptor> {
  const mediaType = opts.mediaType ?? 'application/octet-stream';
  if (opts.digest !== undefined) parseDigest(opts.digest);
  const known = source.type === 'stream' ? undefined : await describeSource(source, opts.digest);
  const digest = known?.digest ?? opts.digest;
  if (digest !== undefined) {
    const have = await statBlob(rq, repo, digest, 'push', opts.signal);
    if (have && (known === undefined || have.size < 0 || have.size === known.size)) {
      return { mediaType, digest, size: known?.size ?? have.size };
    }
  }
  const session = await startSession(rq, repo, opts.signal);
  const chunked = source.type === 'stream' || (opts.chunkSizeBytes !== undefined && known !== undefined && known.size > opts.chunkSizeBytes);
  if (!chunked && known) {
    const body = source.type === 'bytes' ? source.data : () => createReadStream((source as { path: string }).path);
    await finish(rq, repo, session, known.digest, body, known.size, opts.signal);
    return { mediaType, digest: known.digest, size: known.size };
  }
  const chunkSize = opts.chunkSizeBytes ?? DEFAULT_STREAM_CHUNK_BYTES;
  const uploaded = await uploadChunks(rq, repo, session, chunksOf(source, chunkSize), chunkSize, opts.signal);
  const expected = known?.digest ?? opts.digest;
  if (expected !== undefined && expected !== uploaded.digest) {
    throw dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${describeRepo(repo)} push blob: content hashes to ${uploaded.digest}, expected ${expected}`);
  }
  await finish(rq, repo, uploaded.session, uploaded.digest, undefined, 0, opts.signal);
  return { mediaType, digest: uploaded.digest, size: uploaded.size };
}

async function describeSource(source: Exclude<BlobSource, { type: 'stream' }>, digest: string | undefined): Promise<{ digest: string; size: number }> {
  if (source.type === 'bytes') return { digest: digest ?? sha256Digest(source.data), size: source.data.length };
  const { size } = await stat(source.path);
  if (digest !== undefined) return { digest, size };
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(source.path)) hash.update(chunk as Buffer);
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

async function startSession(rq: Requester, repo: RepositoryRef, signal?: AbortSignal): Promise<Session> {
  const res = await rq.request({ repo, path: 'blobs/uploads/', method: 'POST', capability: 'push', headers: { 'content-length': '0' }, signal });
  const what = `${describeRepo(repo, res.host)} start blob upload`;
  if (res.status !== 202) throw await statusError(res, what);
  await res.body.dump().catch(() => undefined);
  return { host: res.host, url: nextLocation(res, what) };
}

function nextLocation(res: RepoResponse, what: string): URL {
  const location = header(res, 'location');
  if (!location) throw failedPrecondition('CLIP_REGISTRY_UNEXPECTED_STATUS', `${what}: response without Location`);
  return new URL(location, res.url);
}

async function* chunksOf(source: BlobSource, chunkSize: number): AsyncGenerator<Buffer> {
  if (source.type === 'bytes') {
    for (let off = 0; off < source.data.length; off += chunkSize) yield source.data.subarray(off, off + chunkSize);
    return;
  }
  const stream = source.type === 'file' ? createReadStream(source.path) : source.stream;
  for await (const chunk of stream) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/** PATCH the chunks, each at most `chunkSize` bytes, hashing as they pass. */
async function uploadChunks(
  rq: Requester, repo: RepositoryRef, session: Session, chunks: AsyncIterable<Buffer>, chunkSize: number, signal?: AbortSignal,
): Promise<{ session: Session; digest: string; size: number }> {
  const hash = createHash('sha256');
  let offset = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let current = session;
  const flush = async (): Promise<void> => {
    const data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    current = await patch(rq, repo, current, data, offset, signal);
    offset += data.length;
  };
  for await (const chunk of chunks) {
    hash.update(chunk);
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, chunkSize - pendingBytes);
      pending.push(chunk.subarray(at, at + take));
      pendingBytes += take;
      at += take;
      if (pendingBytes === chunkSize) await flush();
    }
  }
  if (pendingBytes > 0) await flush();
  return { session: current, digest: `sha256:${hash.digest('hex')}`, size: offset };
}

async function patch(rq: Requester, repo: RepositoryRef, s: Session, data: Buffer, offset: number, signal?: AbortSignal): Promise<Session> {
  const end = offset + data.length - 1;
  const res = await rq.send({
    repo, host: s.host, url: s.url, method: 'PATCH', push: true, body: data, signal,
    headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end}`, 'content-length': String(data.length) },
  });
  const what = `${describeRepo(repo, s.host)} blob upload chunk ${offset}-${end}`;
  if (res.status !== 202) throw await statusError(res, what);
  await res.body.dump().catch(() => undefined);
  const range = header(res, 'range');
  if (range !== undefined && range.replace(/^bytes=/, '') !== `0-${end}`) {
    throw failedPrecondition('CLIP_REGISTRY_UNEXPECTED_STATUS', `${what}: registry holds ${range}`);
  }
  return { host: s.host, url: nextLocation(res, what) };
}

/** The closing PUT (`?digest=`), with the whole body for a monolithic upload or empty after chunks. */
async function finish(
  rq: Requester, repo: RepositoryRef, s: Session, digest: string, body: Buffer | (() => Readable) | undefined, size: number, signal?: AbortSignal,
): Promise<void> {
  const url = new URL(s.url);
  url.searchParams.set('digest', digest);
  const res = await rq.send({
    repo, host: s.host, url, method: 'PUT', push: true, body: body ?? Buffer.alloc(0), signal,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body === undefined ? 0 : size) },
  });
  const what = `${describeRepo(repo, s.host)} push blob ${digest}`;
  if (res.status !== 201) throw await statusError(res, what);
  await res.body.dump().catch(() => undefined);
  const claimed = header(res, 'docker-content-digest');
  if (claimed !== undefined && claimed !== digest) {
    throw dataCorrupt('CLIP_REGISTRY_DIGEST_MISMATCH', `${what}: registry stored ${claimed}`);
  }
}
