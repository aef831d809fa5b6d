/** A gzip layer with a checkpoint table, and a fake registry that serves Range requests. */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { ClipError } from '../../src/errors/index.js';
import type { LayerRef } from '../../src/storage/index.js';
import { NoContentCache, type ContentCache } from '../../src/contentcache/index.js';
import { CheckpointBuilder, encodeCheckpointTable } from '../../src/zran/index.js';
import { FakeBlobSource, type TestLayer } from './fixtures.js';
import { sampleData } from '../zran/fixtures.js';

/** A gzip layer (by pigz) of 12 MiB of varied data, with its encoded checkpoint table. */
export function gzipLayer(): TestLayer & { checkpoints: Buffer } {
  const tar = sampleData(12 * 1024 * 1024, 99);
  const blob = execFileSync('pigz', ['-c', '-6'], { input: tar, maxBuffer: 1 << 30 });
  const b = new CheckpointBuilder({ spanBytes: 1024 * 1024, minLayerBytes: 0 });
  b.push(blob);
  const checkpoints = encodeCheckpointTable(b.finish()!);
  const hex = createHash('sha256').update(tar).digest('hex');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const ref: LayerRef = { ref: 'registry.test/app:1', digest, diffId: `sha256:${hex}`, uncompressedSize: tar.length };
  return { tar, blob, hex, ref, checkpoints };
}

/** The fake registry plus Range support: records every range, or ignores Range like some registries. */
export class RangeBlobSource extends FakeBlobSource {
  ranges: Array<[number, number]> = [];
  ignoreRange = false;
  /** Fail this many range requests as a registry outage would (unavailable), then serve. */
  failNext = 0;
  /** Other blobs of the repository (window packs), by digest; their ranges go to `otherRanges`. */
  readonly others = new Map<string, Buffer>();
  otherRanges: Array<[string, number, number]> = [];
  /** Range answers never come (a registry that trickles or stalls); the request ends only when its signal aborts. */
  hangRanges = false;
  readonly #blob: Buffer;
  constructor(layer: TestLayer) {
    super([layer]);
    this.#blob = layer.blob;
  }
  async fetchRange(ref: LayerRef, start: number, end: number, signal?: AbortSignal): Promise<Buffer> {
    const other = this.others.get(ref.digest);
    if (other) {
      this.otherRanges.push([ref.digest, start, end]);
      return Buffer.from(other.subarray(start, end));
    }
    this.ranges.push([start, end]);
    if (this.failNext > 0) {
      this.failNext--;
      throw new ClipError('unavailable', 'CLIP_REGISTRY_UNAVAILABLE', 'registry.test: connection refused');
    }
    if (this.hangRanges && signal) {
      await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
    }
    if (this.ignoreRange) throw new ClipError('failed_precondition', 'CLIP_REGISTRY_RANGE_UNSUPPORTED', 'the registry ignored the Range header');
    return Buffer.from(this.#blob.subarray(start, end));
  }
}


/** A ContentCache holding only small blobs (profiles, shared spans), in memory: enough for two "nodes". */
export class BlobOnlyCache implements ContentCache {
  readonly name = 'blobs';
  readonly blobs = new Map<string, Buffer>();
  /** Claim to hold every layer object (reads would then come from here, not the registry). */
  holdsLayers = false;
  /** Make every blob call fail as an unreachable backend would. */
  down = false;
  readonly #none = new NoContentCache();
  readInto = this.#none.readInto.bind(this.#none);
  has = async (): Promise<boolean> => this.holdsLayers;
  storeFile = this.#none.storeFile.bind(this.#none);
  close = this.#none.close.bind(this.#none);
  async getBlob(key: string): Promise<Buffer | undefined> {
    if (this.down) throw new ClipError('unavailable', 'CLIP_CONTENT_CACHE_UNAVAILABLE', 'redis: connection refused');
    return this.blobs.get(key);
  }
  readonly #puts = new Set<Promise<void>>();
  putBlob(key: string, data: Buffer): Promise<void> {
    const put = (async () => {
      // Stored after a turn of the event loop, as a network round trip would be: callers that
      // do not wait for it (the span share does not) must not find it there synchronously.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.down) throw new ClipError('unavailable', 'CLIP_CONTENT_CACHE_UNAVAILABLE', 'redis: connection refused');
      this.blobs.set(key, data);
    })();
    this.#puts.add(put);
    void put.catch(() => undefined).finally(() => this.#puts.delete(put));
    return put;
  }
  /** Resolves when every put issued so far has landed (or failed). */
  async settled(): Promise<void> {
    while (this.#puts.size > 0) await Promise.allSettled([...this.#puts]);
  }
}
