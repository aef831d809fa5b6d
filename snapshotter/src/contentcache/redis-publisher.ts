/**
 * Publishing one file: skip when complete, take the publish lock, upload chunks with bounded
 * concurrency (each worker reuses one buffer; reads are positional, so the file is streamed, never
 * held whole), then write the manifest last. Anything that stops the upload early — abort, a lost
 * lock, a Redis error, a crash — leaves no manifest, so readers never see a partial object.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { ClipError, invalidArgument } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { chunkCrc, encodeChunk, encodeManifest, signedManifest, type Manifest } from './chunk-codec.js';
import type { ObjectMac } from './object-mac.js';
import { pieceDigestsOffThread } from './chunk-check-off-thread.js';
import type { StoreOptions, StoreResult } from './content-cache.js';
import { PublishLock } from './publish-lock.js';
import type { RedisConnection } from './redis-connection.js';
import type { RedisKeys } from './redis-keys.js';

/** What a publish needs from its cache. */
export interface PublisherContext {
  conn: RedisConnection;
  keys: RedisKeys;
  chunkSizeBytes: number;
  publishConcurrency: number;
  lockTtlMs: number;
  log: Logger;
  isComplete(key: string, size: number): Promise<boolean>;
  /** With a cluster key: record chunk digests and sign the manifest. */
  mac?: ObjectMac;
  /** With `mac`: bytes of a signed piece (v3); 0 = each chunk signed whole (v2). */
  pieceBytes?: number;
}

/** Publish `path` under `key`; see the file header for the protocol. */
export async function publishFile(ctx: PublisherContext, key: string, path: string, size: number, opts: StoreOptions = {}): Promise<StoreResult> {
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `store of ${key}: bad size ${size}`);
  if (await ctx.isComplete(key, size)) return { type: 'skipped', reason: 'complete' };
  const lock = await PublishLock.acquire(ctx.conn, ctx.keys.lock(key), ctx.lockTtlMs);
  if (!lock) {
    ctx.log.debug({ key, source: 'redis' }, 'content cache publish skipped: another node holds the lock');
    return { type: 'skipped', reason: 'locked' };
  }
  let file: FileHandle | undefined;
  try {
    // The previous holder may have finished between our check and our lock.
    if (await ctx.isComplete(key, size)) return { type: 'skipped', reason: 'complete' };
    file = await open(path, 'r');
    const actual = (await file.stat()).size;
    if (actual !== size) throw invalidArgument('CLIP_CONTENT_CACHE_BAD_OPTIONS', `store of ${key}: ${path} has ${actual} bytes, expected ${size}`);
    const chunks = Math.ceil(size / ctx.chunkSizeBytes);
    const crcs = new Array<number>(chunks).fill(0);
    // A digest per piece, chunk by chunk (v3; a single piece per chunk for v2): `digests[i]` holds chunk i's.
    const digests = new Array<string[]>(chunks).fill([]);
    const storedBytes = await uploadChunks(ctx, { key, file, size, chunks, crcs, digests, lock, opts });
    checkContinue(key, lock, opts.signal);
    const manifest: Manifest = ctx.mac
      ? signedManifest(ctx.mac, key, size, ctx.chunkSizeBytes, digests.flat(), ctx.pieceBytes ? ctx.pieceBytes : undefined)
      : { v: 1, size, chunkSizeBytes: ctx.chunkSizeBytes, chunks, crc32: crcs };
    await ctx.conn.run('store manifest', (c) => c.set(ctx.keys.manifest(key), encodeManifest(manifest)));
    return { type: 'stored', bytes: size, chunks, storedBytes };
  } finally {
    await file?.close().catch(() => {});
    await lock.release();
  }
}

interface Upload {
  key: string;
  file: FileHandle;
  size: number;
  chunks: number;
  crcs: number[];
  digests: string[][];
  lock: PublishLock;
  opts: StoreOptions;
}

async function uploadChunks(ctx: PublisherContext, u: Upload): Promise<number> {
  let next = 0;
  let stored = 0;
  let storedBytes = 0;
  const worker = async (): Promise<void> => {
    // Its own memory (not pooled), so a signed chunk can move to the hashing worker and back.
    const size = Math.min(ctx.chunkSizeBytes, u.size);
    let buf: Buffer = Buffer.allocUnsafeSlow(size);
    for (let i = next++; i < u.chunks; i = next++) {
      checkContinue(u.key, u.lock, u.opts.signal);
      if (u.opts.beforeChunk) {
        await u.opts.beforeChunk();
        checkContinue(u.key, u.lock, u.opts.signal);
      }
      const start = i * ctx.chunkSizeBytes;
      const len = Math.min(ctx.chunkSizeBytes, u.size - start);
      await readFull(u.file, buf, len, start);
      let data = buf.subarray(0, len);
      if (ctx.mac) {
        const hashed = await pieceDigestsOffThread(data, ctx.pieceBytes || ctx.chunkSizeBytes);
        u.digests[i] = hashed.digests;
        data = hashed.data;
        // Moved to the worker (this view now empty) and back: the same memory is in `data`.
        if (buf.byteLength === 0) buf = Buffer.from(data.buffer, 0, size);
      } else u.crcs[i] = chunkCrc(data);
      const value = await encodeChunk(data);
      await ctx.conn.run('store chunk', (c) => c.set(ctx.keys.chunk(u.key, ctx.chunkSizeBytes, i), value));
      storedBytes += value.length;
      stored += len;
      u.opts.onProgress?.(stored);
    }
  };
  const workers = Array.from({ length: Math.min(ctx.publishConcurrency, u.chunks) }, worker);
  // Every worker must stop before we report, or a late SET could land after a failed publish's cleanup.
  const results = await Promise.allSettled(workers);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return storedBytes;
}

function checkContinue(key: string, lock: PublishLock, signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new ClipError('unavailable', 'CLIP_CONTENT_CACHE_PUBLISH_ABORTED', `store of ${key} aborted`, { cause: signal.reason });
  if (lock.lost) throw new ClipError('unavailable', 'CLIP_CONTENT_CACHE_PUBLISH_ABORTED', `store of ${key}: publish lock lost`);
}

async function readFull(file: FileHandle, buf: Buffer, len: number, position: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await file.read(buf, done, len - done, position + done);
    if (bytesRead === 0) throw new ClipError('unavailable', 'CLIP_CONTENT_CACHE_PUBLISH_ABORTED', `file shrank while publishing (at ${position + done})`);
    done += bytesRead;
  }
}
