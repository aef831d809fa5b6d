/**
 * The one ContentCache suite every backend runs (stargz's metadata/testutil pattern): a factory
 * makes a fresh cache instance — a "node" with cold memory — over shared storage, and `raw` gives
 * the test direct access to that storage to corrupt or evict values.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { waitUntil } from '../harness/wait.js';
import type { Cluster, Redis } from 'ioredis';
import type { ContentCache, RedisKeys, StoreResult } from '../../snapshotter/src/contentcache/index.js';

/** What the suite runs against. */
export interface SuiteTarget {
  /** A fresh cache instance; closed at teardown by the suite. */
  make(opts?: { chunkSizeBytes?: number; readaheadChunks?: number; lockTtlMs?: number }): ContentCache;
  /** Direct access to the backing store (absent for NoContentCache). */
  raw?: Redis | Cluster;
  keys?: RedisKeys;
}

/** Deterministic content: runs of random bytes (LZ4 keeps them raw) and of text (LZ4 shrinks them). */
export function makeContent(size: number, seed = 1): Buffer {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  const buf = Buffer.alloc(size);
  for (let at = 0; at < size; ) {
    const run = Math.min(size - at, 1 + Math.floor(next() * 40_000));
    if (next() < 0.5) for (let i = 0; i < run; i++) buf[at + i] = Math.floor(next() * 256);
    else buf.write(`line ${at} of some very compressible layer text\n`.repeat(Math.ceil(run / 40)).slice(0, run), at, 'latin1');
    at += run;
  }
  return buf;
}

let keySeq = 0;
/** A diffID-shaped key unique to this process and call. */
export function freshKey(): string {
  return `sha256:${process.pid.toString(16).padStart(8, '0')}${(Date.now() % 1e9).toString(16).padStart(8, '0')}${(++keySeq).toString(16).padStart(48, '0')}`;
}

async function fileOf(t: Test, data: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-cc-suite-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'layer');
  await writeFile(path, data);
  return path;
}

/** Wait for a Redis-backed cache's background chunk fetches (read-ahead). */
async function settled(cc: ContentCache): Promise<void> {
  const wait = (cc as Partial<{ settled(): Promise<void> }>).settled;
  if (!wait) throw new Error(`${cc.name}: no settled(); the read-ahead test needs it`);
  await wait.call(cc);
}

function maker(t: Test, target: SuiteTarget): SuiteTarget['make'] {
  return (opts) => {
    const cc = target.make(opts);
    t.teardown(() => cc.close());
    return cc;
  };
}

async function read(cc: ContentCache, key: string, offset: number, length: number): Promise<Buffer | undefined> {
  const buf = Buffer.alloc(length + 16, 0xee);
  const n = await cc.readInto(key, offset, length, buf, 16);
  return n === undefined ? undefined : buf.subarray(16, 16 + n);
}

/** Register the suite's subtests on `t`. */
export function contentCacheSuite(t: Test, target: SuiteTarget): void {
  const make = maker(t, target);
  const CS = 64 * 1024;

  t.test('absent objects are misses', async (t) => {
    const cc = make({ chunkSizeBytes: CS });
    const key = freshKey();
    t.equal(await read(cc, key, 0, 100), undefined);
    t.equal(await cc.has(key, 100), false);
    t.equal(await cc.getBlob(key), undefined);
  });

  if (!target.raw || !target.keys) {
    t.test('a cache that stores nothing never hits', async (t) => {
      const cc = make();
      const key = freshKey();
      const data = makeContent(10_000);
      await cc.storeFile(key, await fileOf(t, data), data.length);
      await cc.putBlob(key, data);
      t.equal(await cc.has(key, data.length), false);
      t.equal(await read(cc, key, 0, 10), undefined);
      t.equal(await cc.getBlob(key), undefined);
    });
    return;
  }
  const raw = target.raw;
  const keys = target.keys;

  t.test('store, has, and byte-exact range reads across chunk boundaries from a cold node', async (t) => {
    const data = makeContent(16 * CS + 12_345, 7);
    const path = await fileOf(t, data);
    const a = make({ chunkSizeBytes: CS });
    const key = freshKey();
    const stored = (await a.storeFile(key, path, data.length)) as StoreResult;
    t.match(stored, { type: 'stored', bytes: data.length, chunks: 17 });
    t.equal(await a.has(key, data.length), true);
    t.equal(await a.has(key, data.length + 1), false, 'a different size is not this object');
    t.match(await a.storeFile(key, path, data.length), { type: 'skipped', reason: 'complete' }, 'never re-uploaded');
    const b = make({ chunkSizeBytes: CS, readaheadChunks: 0 });
    let rnd = 99;
    const next = (n: number): number => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31), rnd % n);
    let bad = 0;
    for (let i = 0; i < 150; i++) {
      const offset = i % 3 === 0 ? Math.max(0, (next(17) + 1) * CS - next(300)) : next(data.length);
      const length = 1 + next(i % 5 === 0 ? 3 * CS : 9000);
      const got = await read(b, key, offset, length);
      const want = data.subarray(offset, Math.min(data.length, offset + length));
      if (!got || !got.equals(want)) bad++;
    }
    t.equal(bad, 0, '150 random reads byte-exact (many spanning chunk boundaries)');
    t.same(await read(b, key, data.length - 10, 100), data.subarray(data.length - 10), 'a read past the end is clamped');
    t.equal((await read(b, key, data.length, 10))?.length, 0, 'a read at the end reads 0 bytes');
    t.same(await read(b, key, 0, data.length), data, 'the whole object in one read');
  });

  t.test('an empty object', async (t) => {
    const cc = make({ chunkSizeBytes: CS });
    const key = freshKey();
    await cc.storeFile(key, await fileOf(t, Buffer.alloc(0)), 0);
    t.equal(await cc.has(key, 0), true);
    t.equal((await read(cc, key, 0, 10))?.length, 0);
  });

  t.test('blobs round-trip compressed and are verified', async (t) => {
    const cc = make();
    const key = freshKey();
    const blob = makeContent(200_000, 3);
    await cc.putBlob(key, blob);
    t.same(await make().getBlob(key), blob);
    const stored = await raw.getBuffer(keys.blob(key));
    t.ok(stored && stored.length < blob.length, 'stored compressed');
    const at = stored!.length >> 1;
    stored!.writeUInt8(stored!.readUInt8(at) ^ 0xff, at);
    await raw.set(keys.blob(key), stored!);
    t.equal(await make().getBlob(key), undefined, 'a corrupt blob is a miss');
    t.equal(await raw.exists(keys.blob(key)), 0, 'and is deleted');
  });

  for (const damage of ['corrupted', 'evicted'] as const) {
    t.test(`a ${damage} chunk is a miss, drops the manifest, and the layer is republished`, async (t) => {
      const data = makeContent(8 * CS, 11);
      const path = await fileOf(t, data);
      const key = freshKey();
      await make({ chunkSizeBytes: CS }).storeFile(key, path, data.length);
      const ck = keys.chunk(key, CS, 3);
      if (damage === 'evicted') await raw.del(ck);
      else {
        const v = (await raw.getBuffer(ck))!;
        const at = Math.floor(v.length / 2);
        v.writeUInt8(v.readUInt8(at) ^ 0x5a, at);
        await raw.set(ck, v);
      }
      const b = make({ chunkSizeBytes: CS });
      t.same(await read(b, key, 0, 100), data.subarray(0, 100), 'intact chunks still read before the damage is seen');
      t.equal(await read(b, key, 3 * CS - 10, 20), undefined, 'the damaged chunk is a miss');
      t.equal(await raw.exists(keys.manifest(key)), 0, 'manifest deleted');
      t.equal(await make({ chunkSizeBytes: CS }).has(key, data.length), false, 'no longer complete for other nodes');
      t.match(await make({ chunkSizeBytes: CS }).storeFile(key, path, data.length), { type: 'stored' }, 'republished');
      t.same(await read(make({ chunkSizeBytes: CS }), key, 3 * CS - 10, 20), data.subarray(3 * CS - 10, 3 * CS + 10));
    });
  }

  t.test('publish lock: of two concurrent publishers one uploads, the other skips', async (t) => {
    const data = makeContent(12 * CS, 5);
    const path = await fileOf(t, data);
    const key = freshKey();
    const results = (await Promise.all([
      make({ chunkSizeBytes: CS }).storeFile(key, path, data.length),
      make({ chunkSizeBytes: CS }).storeFile(key, path, data.length),
    ])) as StoreResult[];
    t.equal(results.filter((r) => r.type === 'stored').length, 1, JSON.stringify(results));
    t.equal(results.filter((r) => r.type === 'skipped').length, 1);
    t.equal(await raw.exists(keys.lock(key)), 0, 'lock released');
    t.same(await read(make({ chunkSizeBytes: CS }), key, 0, data.length), data);
  });

  t.test('a lock left by a dead publisher expires', async (t) => {
    const data = makeContent(2 * CS, 6);
    const path = await fileOf(t, data);
    const key = freshKey();
    await raw.set(keys.lock(key), 'dead-node', 'PX', 400);
    t.match(await make({ chunkSizeBytes: CS }).storeFile(key, path, data.length), { type: 'skipped', reason: 'locked' });
    // Redis expires the lock on its own clock: wait for that event, not for a time.
    await waitUntil('the dead publisher\'s lock expired', async () => (await raw.exists(keys.lock(key))) === 0, 10_000, 20);
    t.match(await make({ chunkSizeBytes: CS }).storeFile(key, path, data.length), { type: 'stored' });
  });

  t.test('a publish that dies half-way leaves nothing marked complete', async (t) => {
    const data = makeContent(10 * CS, 8);
    const path = await fileOf(t, data);
    const key = freshKey();
    const ac = new AbortController();
    const cc = make({ chunkSizeBytes: CS });
    let progress = 0;
    await t.rejects(
      cc.storeFile(key, path, data.length, { signal: ac.signal, onProgress: (n) => ((progress = n), ac.abort()) }),
      { code: 'CLIP_CONTENT_CACHE_PUBLISH_ABORTED' },
    );
    t.ok(progress > 0 && progress < data.length, `aborted after ${progress} bytes`);
    t.ok((await raw.exists(keys.chunk(key, CS, 0))) === 1, 'some chunks were written');
    t.equal(await raw.exists(keys.manifest(key)), 0, 'no manifest');
    const other = make({ chunkSizeBytes: CS });
    t.equal(await other.has(key, data.length), false);
    t.equal(await read(other, key, 0, 10), undefined, 'readers see a miss');
    t.match(await other.storeFile(key, path, data.length), { type: 'stored' }, 'the lock was released; another node publishes');
  });

  t.test('sequential readers get read-ahead; random readers do not', async (t) => {
    const data = makeContent(8 * CS, 9);
    const path = await fileOf(t, data);
    const key = freshKey();
    await make({ chunkSizeBytes: CS }).storeFile(key, path, data.length);
    const seq = make({ chunkSizeBytes: CS, readaheadChunks: 2 });
    await read(seq, key, 0, 4096);
    await read(seq, key, 4096, 4096);
    await settled(seq); // the read-ahead is not awaited by the read
    await raw.del(keys.chunk(key, CS, 1));
    await raw.del(keys.chunk(key, CS, 2));
    t.same(await read(seq, key, CS, 2 * CS), data.subarray(CS, 3 * CS), 'chunks 1-2 were prefetched into memory');
    const rnd = make({ chunkSizeBytes: CS, readaheadChunks: 2 });
    await read(rnd, key, 4 * CS + 100, 10);
    await settled(rnd);
    await raw.del(keys.chunk(key, CS, 5));
    t.equal(await read(rnd, key, 5 * CS, 10), undefined, 'no prefetch for a lone read: chunk 5 came from Redis and was gone');
  });
}
