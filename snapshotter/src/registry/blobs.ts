import type { Readable, Transform } from 'node:stream';
import { ClipError, invalidArgument } from '../errors/index.js';
import { DigestVerifier, parseDigest, verifyDigest } from './digest.js';
import { ExactLength } from './exact-length.js';
import type { RepositoryRef } from './reference.js';
import { describeRepo, type Requester } from './requester.js';
import { header } from './headers.js';
import { statusError, unavailable } from './registry-errors.js';
import { discard, readLimited } from './response-body.js';
import type { ResponseBody } from './http.js';
import { BlobFetchObserver } from '../telemetry/blob-fetch-span.js';

/** A byte range of a blob: `length` bytes from `offset`. */
export interface ByteRange {
  offset: number;
  length: number;
}

export interface FetchBlobOptions {
  range?: ByteRange;
  /** The blob's size when known (from its descriptor); whole-blob fetches are checked against it. */
  size?: number;
  signal?: AbortSignal;
}

/** An open blob download. Whole-blob streams fail with data_corrupt before `end` on a digest mismatch. */
export interface BlobStream {
  stream: Readable;
  /** Total blob size, when the registry said. */
  size: number | undefined;
  /** Where this stream starts in the blob and how many bytes it carries. */
  offset: number;
  length: number | undefined;
}

/** GET a blob, whole (verified while streaming) or a range (checked against `Content-Range`). */
export async function fetchBlob(rq: Requester, repo: RepositoryRef, digest: string, opts: FetchBlobOptions = {}): Promise<BlobStream> {
  const obs = new BlobFetchObserver(digest, opts.range);
  try {
    return await openBlob(rq, repo, digest, opts, obs);
  } catch (err) {
    obs.fail(err);
    throw err;
  }
}

async function openBlob(rq: Requester, repo: RepositoryRef, digest: string, opts: FetchBlobOptions, obs: BlobFetchObserver): Promise<BlobStream> {
  parseDigest(digest);
  const { range } = opts;
  if (range && (!Number.isSafeInteger(range.offset) || !Number.isSafeInteger(range.length) || range.offset < 0 || range.length <= 0)) {
    throw invalidArgument('CLIP_REGISTRY_REJECTED', `blob ${digest}: bad range ${range.offset}+${range.length}`);
  }
  const res = await rq.request({
    repo, path: `blobs/${digest}`, method: 'GET', capability: 'pull', signal: opts.signal,
    headers: range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {},
  });
  obs.response(res.url, res.status);
  const what = `${describeRepo(repo, res.host)} blob ${digest}${range ? ` range ${range.offset}+${range.length}` : ''}`;
  if (range) return rangeStream(res.status, res.body, header(res, 'content-range'), header(res, 'content-length'), range, what, () => statusError(res, what), obs);
  if (res.status !== 200) throw await statusError(res, what);
  const contentLength = numberOrUndefined(header(res, 'content-length'));
  if (opts.size !== undefined && contentLength !== undefined && contentLength !== opts.size) {
    discard(res.body);
    throw new ClipError('data_corrupt', 'CLIP_REGISTRY_DIGEST_MISMATCH', `${what}: registry sends ${contentLength} bytes, descriptor says ${opts.size}`);
  }
  const size = opts.size ?? contentLength;
  return { stream: guard(res.body, new DigestVerifier(digest, what, size), what, obs), size, offset: 0, length: size };
}

async function rangeStream(
  status: number, body: ResponseBody, contentRange: string | undefined, contentLength: string | undefined, range: ByteRange, what: string,
  fail: () => Promise<ClipError>, obs: BlobFetchObserver,
): Promise<BlobStream> {
  if (status === 200) {
    discard(body);
    throw new ClipError('failed_precondition', 'CLIP_REGISTRY_RANGE_UNSUPPORTED', `${what}: the registry ignored the Range header and sent the whole blob`);
  }
  if (status !== 206) throw await fail();
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange?.trim() ?? '');
  const start = Number(m?.[1]);
  const end = Number(m?.[2]);
  const total = m?.[3] === '*' || m === null ? undefined : Number(m[3]);
  const wantEnd = range.offset + range.length - 1;
  const endOk = end === wantEnd || (total !== undefined && wantEnd >= total && end === total - 1);
  if (!m || start !== range.offset || !endOk || end < start) {
    discard(body);
    throw new ClipError('failed_precondition', 'CLIP_REGISTRY_RANGE_UNSUPPORTED', `${what}: wrong Content-Range "${contentRange ?? ''}"`);
  }
  const length = end - start + 1;
  const declared = numberOrUndefined(contentLength);
  if (declared !== undefined && declared !== length) {
    discard(body);
    throw new ClipError('data_corrupt', 'CLIP_REGISTRY_BODY_TOO_LONG', `${what}: Content-Length ${declared} does not match Content-Range "${contentRange ?? ''}"`);
  }
  return { stream: guard(body, new ExactLength(length, what), what, obs), size: total, offset: start, length };
}

/** Pipe the body into `out`, turning transport failures into `unavailable` errors on `out`. */
function guard(body: ResponseBody, out: Transform, what: string, obs: BlobFetchObserver): Readable {
  body.on('error', (err: unknown) => {
    out.destroy(err instanceof ClipError ? err : unavailable(`${what}: download failed: ${(err as Error)?.message ?? String(err)}`, err));
  });
  out.on('close', () => {
    if (!body.destroyed) discard(body);
  });
  body.pipe(out);
  obs.watch(body, out);
  return out;
}

function numberOrUndefined(v: string | undefined): number | undefined {
  const n = v === undefined ? NaN : Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** GET a small blob whole into memory (configs, index blobs), verified, at most `maxBytes`. */
export async function fetchBlobBytes(rq: Requester, repo: RepositoryRef, digest: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
  parseDigest(digest);
  const res = await rq.request({ repo, path: `blobs/${digest}`, method: 'GET', capability: 'pull', signal });
  const what = `${describeRepo(repo, res.host)} blob ${digest}`;
  if (res.status !== 200) throw await statusError(res, what);
  const bytes = await readLimited(res.body, maxBytes, what, res.headers).catch((err: unknown) => {
    throw err instanceof ClipError ? err : unavailable(`${what}: download failed`, err);
  });
  verifyDigest(bytes, digest, what);
  return bytes;
}

/** HEAD a blob: its size when present, undefined when the registry does not have it. */
export async function statBlob(rq: Requester, repo: RepositoryRef, digest: string, capability: 'pull' | 'push', signal?: AbortSignal): Promise<{ size: number } | undefined> {
  parseDigest(digest);
  const res = await rq.request({ repo, path: `blobs/${digest}`, method: 'HEAD', capability, signal });
  await res.body.dump().catch(() => undefined);
  if (res.status === 404) return undefined;
  if (res.status !== 200) throw await statusError(res, `${describeRepo(repo, res.host)} blob ${digest}`);
  return { size: numberOrUndefined(header(res, 'content-length')) ?? -1 };
}
