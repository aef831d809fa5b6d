/**
 * RedisContentCache against a real standalone redis-server: the shared suite, then what only a
 * real server can show — AUTH, a server that dies, one that hangs, and the storage tier's circuit
 * breaker in front of them.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { NoContentCache, ObjectMac, RedisContentCache, RedisKeys, createContentCache } from '../../snapshotter/src/contentcache/index.js';
import { chunkCrc, encodeBlob, encodeChunk, encodeManifest } from '../../snapshotter/src/contentcache/chunk-codec.js';
import { parseConfig } from '../../snapshotter/src/config/index.js';
import { silentLogger } from '../../snapshotter/src/log/index.js';
import { contentCacheSuite, freshKey, makeContent } from './content-cache-suite.js';
import { startRedis } from '../harness/redis.js';
import { waitUntil } from '../harness/index.js';

const base = { cluster: false, username: '', password: '', tls: false, timeoutMs: 1_000 };

/** A fresh Redis and a plain client of it (to plant and inspect keys), both gone at teardown. */
async function redisWithClient(t: Parameters<typeof startRedis>[0]): Promise<{ server: Awaited<ReturnType<typeof startRedis>>; raw: Redis }> {
  const server = await startRedis(t);
  const raw = new Redis({ port: server.port, host: '127.0.0.1' });
  t.teardown(() => raw.disconnect());
  return { server, raw };
}

type CacheOptions = ConstructorParameters<typeof RedisContentCache>[0];

/** A fresh Redis, a cluster key, a temp dir and a maker of signed caches that count refusals by kind. */
async function signedCaches(t: Parameters<typeof startRedis>[0], o: Partial<CacheOptions> = {}): Promise<{
  server: Awaited<ReturnType<typeof startRedis>>; raw: Redis; dir: string; failures: string[]; make: (more?: Partial<CacheOptions>) => RedisContentCache;
}> {
  const { server, raw } = await redisWithClient(t);
  const mac = new ObjectMac([randomBytes(32)]);
  const failures: string[] = [];
  const make = (more: Partial<CacheOptions> = {}): RedisContentCache => {
    const c = new RedisContentCache({ ...base, addresses: [server.address], mac, onVerificationFailure: (kind) => failures.push(kind), ...o, ...more });
    t.teardown(() => c.close());
    return c;
  };
  const dir = await mkdtemp('/tmp/clip-cc-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { server, raw, dir, failures, make };
}

t.test('shared suite: standalone Redis', async (t) => {
  const { server, raw } = await redisWithClient(t);
  const keys = new RedisKeys();
  contentCacheSuite(t, { raw, keys, make: (o) => new RedisContentCache({ ...base, addresses: [server.address], lockTtlMs: 2_000, ...o }) });
});

t.test('shared suite: NoContentCache', async (t) => {
  contentCacheSuite(t, { make: () => new NoContentCache() });
});

t.test('AUTH: the right password works, a wrong one is unavailable (and never logged)', async (t) => {
  const server = await startRedis(t, { requirepass: 's3cret-pw' });
  const good = new RedisContentCache({ ...base, addresses: [server.address], password: 's3cret-pw' });
  t.teardown(() => good.close());
  const key = freshKey();
  await good.putBlob(key, Buffer.from('index'));
  t.same(await good.getBlob(key), Buffer.from('index'));
  const none = new RedisContentCache({ ...base, addresses: [server.address] });
  t.teardown(() => none.close());
  await t.rejects(none.getBlob(key), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' });
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
  const wrong = createContentCache(
    parseConfig(`[content_cache]\nbackend = "redis"\naddresses = ["${server.address}"]\npassword = "file-pw"\nallow_unverified = true\n`, 'x').contentCache,
    log,
    { CLIP_CONTENT_CACHE_PASSWORD: 'wrong-env-pw' },
  );
  t.teardown(() => wrong.close());
  const err = await wrong.getBlob(key).catch((e: unknown) => e as Error);
  t.match(err, { kind: 'unavailable', message: /WRONGPASS|NOAUTH|closed/ });
  t.notMatch(String((err as Error).message) + lines.join(''), /wrong-env-pw|file-pw/, 'no password in errors or logs');
  const envGood = createContentCache(
    parseConfig(`[content_cache]\nbackend = "redis"\naddresses = ["${server.address}"]\nallow_unverified = true\n`, 'x').contentCache,
    silentLogger(),
    { CLIP_CONTENT_CACHE_PASSWORD: 's3cret-pw' },
  );
  t.teardown(() => envGood.close());
  t.same(await envGood.getBlob(key), Buffer.from('index'), 'password from CLIP_CONTENT_CACHE_PASSWORD');
});

t.test('Redis down: unavailable at once (not after timeout_ms), and back when it returns', async (t) => {
  const server = await startRedis(t);
  // timeout_ms long (a failure that waited for it would take minutes and say "timed out"): each
  // failure must name the refused connection instead.
  const cc = new RedisContentCache({ ...base, addresses: [server.address], timeoutMs: 60_000 });
  t.teardown(() => cc.close());
  const key = freshKey();
  await cc.putBlob(key, Buffer.from('x'));
  await server.stop();
  // Either the refused connect itself, or the client failing fast while it reconnects (ioredis
  // words that as "reconnecting", "closed" or "stream isn't writeable" depending on its state).
  const refused = /ECONNREFUSED|is reconnecting|Connection is closed|Stream isn't writeable/;
  for (let i = 0; i < 5; i++) {
    await t.rejects(cc.readInto(key, 0, 1, Buffer.alloc(1), 0), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: refused });
  }
  const never = new RedisContentCache({ ...base, addresses: [server.address], timeoutMs: 60_000 });
  t.teardown(() => never.close());
  await t.rejects(never.has(key, 1), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: refused }, 'a cache that never connected fails at once too');
  await server.restart();
  await waitUntil('reconnect', () => cc.has(key, 1).then(() => true, () => false), 10_000, 100);
  t.pass('reconnected after Redis came back');
});

t.test('connect(): connects before the first use; a Redis that is down rejects unavailable, and a later use connects once it is up', async (t) => {
  const { server, raw } = await redisWithClient(t);
  const named = async (): Promise<number> => ((await raw.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes('name=clip-snapshotter')).length;
  const cc = new RedisContentCache({ ...base, addresses: [server.address] });
  t.teardown(() => cc.close());
  t.equal(await named(), 0, 'constructed: not connected yet (lazy)');
  await cc.connect();
  t.equal(await named(), 1, 'connected by connect(), before any use');
  await server.stop();
  const early = new RedisContentCache({ ...base, addresses: [server.address] });
  t.teardown(() => early.close());
  await t.rejects(early.connect(), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE' }, 'Redis down at start: unavailable');
  await server.restart();
  const key = freshKey();
  await waitUntil('a cache whose connect() failed reaches Redis once it is up', () => early.putBlob(key, Buffer.from('y')).then(() => true, () => false), 10_000, 100);
  t.same(await early.getBlob(key), Buffer.from('y'));
});

t.test('chunks are LZ4-compressed in Redis', async (t) => {
  const server = await startRedis(t);
  const cc = new RedisContentCache({ ...base, addresses: [server.address], chunkSizeBytes: 65536 });
  t.teardown(() => cc.close());
  const text = Buffer.from('compressible layer bytes\n'.repeat(10_000));
  const dir = await mkdtemp('/tmp/clip-cc-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(`${dir}/l`, text);
  const key = freshKey();
  const r = await cc.storeFile(key, `${dir}/l`, text.length);
  t.ok(r.type === 'stored' && r.storedBytes < text.length / 10, `stored ${JSON.stringify(r)}`);
  const used = Number(await server.cli('STRLEN', cc.keys.chunk(key, 65536, 0)));
  t.ok(used > 0 && used < 65536 / 10, `chunk 0 is ${used} bytes in Redis`);
  t.ok(makeContent(10).length === 10);
});

t.test('with a cluster key: planted objects with self-consistent checksums are misses, never served (issue 12)', async (t) => {
  const { server, raw } = await redisWithClient(t);
  const key = randomBytes(32);
  const failures: string[] = [];
  // Every cache is a connection that keeps the test process alive until closed.
  const make = (k: Buffer): RedisContentCache => {
    const c = new RedisContentCache({ ...base, addresses: [server.address], chunkSizeBytes: 65536, mac: new ObjectMac([k]), onVerificationFailure: (kind) => failures.push(kind) });
    t.teardown(() => c.close());
    return c;
  };
  const cc = make(key);
  const dir = await mkdtemp('/tmp/clip-cc-');
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = Buffer.from('layer A true bytes\n'.repeat(8_000));
  const b = Buffer.from('layer B true bytes\n'.repeat(8_000));
  await writeFile(`${dir}/a`, a);
  await writeFile(`${dir}/b`, b);
  const [ka, kb] = [freshKey(), freshKey()];
  t.match(await cc.storeFile(ka, `${dir}/a`, a.length), { type: 'stored' });
  t.match(await cc.storeFile(kb, `${dir}/b`, b.length), { type: 'stored' });
  const read = async (c: RedisContentCache, k: string): Promise<Buffer | undefined> => {
    const buf = Buffer.alloc(a.length);
    const n = await c.readInto(k, 0, a.length, buf, 0);
    return n === undefined ? undefined : buf.subarray(0, n);
  };
  t.same(await read(make(key), ka), a, 'an honest signed object reads back on another node');

  // 1. Layer A's manifest and chunks copied onto layer B's keys.
  const chunks = Math.ceil(a.length / 65536);
  for (let i = 0; i < chunks; i++) await raw.set(cc.keys.chunk(kb, 65536, i), (await raw.getBuffer(cc.keys.chunk(ka, 65536, i))) as Buffer);
  await raw.set(cc.keys.manifest(kb), (await raw.get(cc.keys.manifest(ka))) as string);
  t.equal(await read(make(key), kb), undefined, 'copied object: a miss');
  t.equal(await raw.get(cc.keys.manifest(kb)), null, 'and its manifest dropped');

  // 2. A crafted v1 object (manifest + chunks with valid CRCs) on layer A's key.
  const planted = Buffer.from('planted bytes !!!!\n'.repeat(8_000));
  const crcs: number[] = [];
  for (let i = 0; i < chunks; i++) {
    const part = planted.subarray(i * 65536, (i + 1) * 65536);
    crcs.push(chunkCrc(part));
    await raw.set(cc.keys.chunk(ka, 65536, i), await encodeChunk(part));
  }
  await raw.set(cc.keys.manifest(ka), encodeManifest({ v: 1, size: planted.length, chunkSizeBytes: 65536, chunks, crc32: crcs }));
  t.equal(await read(make(key), ka), undefined, 'crafted v1 object: a miss');

  // 3. A genuine signed manifest with chunks swapped for planted ones (valid LZ4, valid length).
  await cc.storeFile(ka, `${dir}/a`, a.length);
  await raw.set(cc.keys.chunk(ka, 65536, 1), await encodeChunk(planted.subarray(65536, 2 * 65536)));
  t.equal(await read(make(key), ka), undefined, 'planted chunk under a signed manifest: a miss');

  // 4. Blobs (spans, indexes, start profiles): moved between keys, or crafted unsigned.
  const span = Buffer.from('span bytes '.repeat(500));
  await cc.putBlob('span:v1:sha256:aa:0-5500', span);
  t.same(await make(key).getBlob('span:v1:sha256:aa:0-5500'), span, 'honest span');
  await raw.set(cc.keys.blob('span:v1:sha256:bb:0-5500'), (await raw.getBuffer(cc.keys.blob('span:v1:sha256:aa:0-5500'))) as Buffer);
  t.equal(await make(key).getBlob('span:v1:sha256:bb:0-5500'), undefined, 'span moved to another layer: a miss');
  await raw.set(cc.keys.blob('clip-index/sha256:cc'), await encodeBlob(Buffer.from('crafted index')));
  t.equal(await make(key).getBlob('clip-index/sha256:cc'), undefined, 'crafted index with a valid CRC: a miss');
  await raw.set(cc.keys.blob('profile:v1:sha256:dd'), await encodeBlob(Buffer.from('crafted profile')));
  t.equal(await make(key).getBlob('profile:v1:sha256:dd'), undefined, 'crafted profile: a miss');
  t.equal(await raw.getBuffer(cc.keys.blob('profile:v1:sha256:dd')), null, 'and deleted');

  // 5. Another cluster's key.
  await cc.storeFile(ka, `${dir}/a`, a.length);
  t.equal(await read(make(randomBytes(32)), ka), undefined, 'signed with another key: a miss');
  t.same(failures.sort(), ['chunk', 'index', 'manifest', 'manifest', 'manifest', 'profile', 'span'].sort(), 'each refusal counted by kind');
});

t.test('with a cluster key and 4 MiB chunks: chunks are hashed on a worker thread, planted ones still refused', async (t) => {
  const { raw, dir, failures, make } = await signedCaches(t);
  const CS = 4 << 20;
  // Random bytes stay raw (LZ4 would not shrink them), text is LZ4: both encodings cross the thread.
  const data = Buffer.concat([randomBytes(CS), Buffer.from('a line of a file\n'.repeat(Math.ceil((CS + 12345) / 17))).subarray(0, CS + 12345)]);
  await writeFile(`${dir}/layer`, data);
  const key = freshKey();
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' }, 'published: its digests computed on the worker');
  const read = async (c: RedisContentCache, offset: number, length: number): Promise<Buffer | undefined> => {
    const buf = Buffer.alloc(length);
    const n = await c.readInto(key, offset, length, buf, 0);
    return n === undefined ? undefined : buf.subarray(0, n);
  };
  const b = make();
  t.same(await read(b, 0, data.length), data, 'every chunk (raw, LZ4, the short last one) reads back on another node');
  t.same(await read(b, CS - 100, 200), data.subarray(CS - 100, CS + 100), 'a read across a chunk boundary');
  await raw.set(b.keys.chunk(key, CS, 1), await encodeChunk(Buffer.alloc(CS, 0x41)));
  t.equal(await read(make(), CS, 10), undefined, 'a planted 4 MiB chunk under the signed manifest: a miss');
  t.same(failures, ['chunk'], 'counted once, as a chunk');

  // Pieces (256 KiB) are checked as reads reach them: a chunk whose first piece is true and whose
  // last is planted serves the first and refuses the last.
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' }, 'republished');
  const half = Buffer.from(data.subarray(CS, 2 * CS));
  half.fill(0x42, CS - 1000);
  await raw.set(b.keys.chunk(key, CS, 1), await encodeChunk(half));
  const c = make();
  t.same(await read(c, CS, 4096), data.subarray(CS, CS + 4096), 'a read of a true piece is served');
  t.equal(await read(c, 2 * CS - 100, 50), undefined, 'a read of the planted piece: a miss');
  t.same(failures, ['chunk', 'chunk'], 'counted');
  t.equal(await raw.get(c.keys.manifest(key)), null, 'the object dropped, to be republished');
});

t.test('bulk reads: a sequential reader\'s chunks come checked from the worker; planted ones still refused; a paused or dead Redis fails by its deadline or at once', async (t) => {
  const CS = 1 << 20;
  const { server, raw, dir, failures, make } = await signedCaches(t, { chunkSizeBytes: CS });
  const data = randomBytes(6 * CS + 777);
  await writeFile(`${dir}/layer`, data);
  const key = freshKey();
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' });
  const STEP = 128 << 10;
  /** Read [from, to) in STEP reads, as the kernel sends a sequential reader's; the first miss ends it. */
  const readSeq = async (c: RedisContentCache, from = 0, to = data.length): Promise<{ bytes: Buffer; missAt?: number }> => {
    const out = Buffer.alloc(to - from);
    for (let at = from; at < to; at += STEP) {
      const n = await c.readInto(key, at, Math.min(STEP, to - at), out, at - from);
      if (n === undefined) return { bytes: out.subarray(0, at - from), missAt: at };
    }
    return { bytes: out };
  };

  const small = freshKey();
  await writeFile(`${dir}/small`, data.subarray(0, 2 * CS));
  t.match(await make().storeFile(small, `${dir}/small`, 2 * CS), { type: 'stored' });
  const checker = make();
  t.equal(await checker.has(small, 2 * CS), true);
  t.equal(checker.bulkReadsStarted, false, 'a two-chunk object does not start the bulk worker');
  t.equal(await checker.has(key, data.length), true);
  t.equal(checker.bulkReadsStarted, true, 'a larger one does, when its manifest is first read (pull checks every layer)');
  const bulk = make();
  t.equal(bulk.bulkReadsStarted, false, 'not before');
  t.equal(await bulk.startBulkReads(), true, 'the bulk worker started');
  t.same((await readSeq(bulk)).bytes, data, 'a sequential reader reads every byte');
  t.ok(bulk.bulkChunksFetched >= 5, `its chunks came from the bulk worker (${bulk.bulkChunksFetched} of 7)`);
  const plain = make({ bulkReads: false });
  t.equal(await plain.startBulkReads(), false, 'no bulk worker when bulk reads are off');
  t.same((await readSeq(plain)).bytes, data, 'the same with bulk reads off');
  t.equal(plain.bulkChunksFetched, 0, 'and then none from the worker');
  const lone = make();
  await lone.startBulkReads();
  const one = Buffer.alloc(100);
  t.equal(await lone.readInto(key, 3 * CS + 5, 100, one, 0), 100);
  t.same(one, data.subarray(3 * CS + 5, 3 * CS + 105), 'a lone read is served');
  t.equal(lone.bulkChunksFetched, 0, 'in-thread: a lone (random) read does not take the bulk path');

  // A planted piece (valid encoding, the manifest's length) in chunk 3: its first pieces are true and served, the planted one refused.
  const planted = Buffer.from(data.subarray(3 * CS, 4 * CS));
  planted.fill(0x42, CS - 1000);
  await raw.set(bulk.keys.chunk(key, CS, 3), await encodeChunk(planted));
  const reader = make();
  await reader.startBulkReads();
  const r = await readSeq(reader);
  // The planted bytes are in chunk 3's last 256 KiB piece: the first read covering it is refused.
  t.equal(r.missAt, 4 * CS - (256 << 10), 'the read of the planted piece is a miss');
  t.same(r.bytes, data.subarray(0, 4 * CS - (256 << 10)), 'every byte before it was the true one');
  t.ok(reader.bulkChunksFetched >= 3, 'through the bulk worker');
  t.same(failures, ['chunk'], 'counted as a refused chunk');
  t.equal(await raw.get(reader.keys.manifest(key)), null, 'the object dropped, to be republished');

  // A value longer than any honest chunk (stored raw at most: 1 + its length) is refused unread.
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' }, 'republished');
  await raw.set(bulk.keys.chunk(key, CS, 2), Buffer.concat([Buffer.of(0), randomBytes(2 * CS)]));
  const oversized = make();
  await oversized.startBulkReads();
  const r2 = await readSeq(oversized);
  t.equal(r2.missAt, 2 * CS, 'an oversized chunk value is a miss');
  t.same(failures, ['chunk', 'chunk'], 'refused as a chunk that failed its check');

  // A whole-chunk signature (v2): a planted chunk fails the worker's check.
  const v2 = make({ pieceBytes: 0 });
  t.match(await v2.storeFile(key, `${dir}/layer`, data.length), { type: 'stored' }, 'republished as v2');
  await raw.set(bulk.keys.chunk(key, CS, 4), await encodeChunk(Buffer.alloc(CS, 0x41)));
  const v2Reader = make({ pieceBytes: 0 });
  await v2Reader.startBulkReads();
  const r3 = await readSeq(v2Reader);
  t.equal(r3.missAt, 4 * CS, 'v2: the planted chunk is a miss');
  t.same(r3.bytes, data.subarray(0, 4 * CS));
  t.same(failures, ['chunk', 'chunk', 'chunk']);

  // Outages. A paused Redis: the bulk GET ends by its deadline (timeoutMs 1 s), never hangs.
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' }, 'republished');
  const paused = make({ readaheadChunks: 0 });
  await paused.startBulkReads();
  t.ok((await readSeq(paused, 0, 2 * CS)).missAt === undefined, 'first chunks read (manifest now in memory)');
  await server.cli('CLIENT', 'PAUSE', '5000', 'ALL');
  await t.rejects(readSeq(paused, 2 * CS, 3 * CS), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: /no reply within the deadline/ });
  await server.cli('CLIENT', 'UNPAUSE');
  // A dead Redis: refused at once (timeoutMs 60 s would make a wait obvious).
  const dead = make({ readaheadChunks: 0, timeoutMs: 60_000 });
  await dead.startBulkReads();
  t.ok((await readSeq(dead, 0, 2 * CS)).missAt === undefined);
  await server.stop();
  await t.rejects(readSeq(dead, 2 * CS, 3 * CS), { kind: 'unavailable', code: 'CLIP_CONTENT_CACHE_UNAVAILABLE', message: /ECONNREFUSED|closed/ });
});

t.test('bulk reads reuse chunk memory: chunks a sequential reader left behind go back to the worker and are received into again; every byte still right', async (t) => {
  const CS = 1 << 20;
  const { dir, failures, make } = await signedCaches(t, { chunkSizeBytes: CS });
  const data = randomBytes(24 * CS + 4321);
  await writeFile(`${dir}/layer`, data);
  const key = freshKey();
  t.match(await make().storeFile(key, `${dir}/layer`, data.length), { type: 'stored' });
  /** Read [from, to) in `step` reads; undefined on a miss. */
  const readSeq = async (c: RedisContentCache, from: number, to: number, step: number): Promise<Buffer | undefined> => {
    const out = Buffer.alloc(to - from);
    for (let at = from; at < to; at += step) {
      const n = await c.readInto(key, at, Math.min(step, to - at), out, at - from);
      if (n === undefined) return undefined;
    }
    return out;
  };
  const reader = make();
  t.equal(await reader.startBulkReads(), true);
  t.same(await readSeq(reader, 0, data.length, 128 << 10), data, 'a sequential reader reads every byte');
  t.ok(reader.bulkChunksFetched >= 20, `through the bulk worker (${reader.bulkChunksFetched} of 25 chunks)`);
  t.ok(reader.bulkBuffersReturned >= 15, `the memory of chunks it left behind went back to the worker (${reader.bulkBuffersReturned} buffers)`);
  t.same(await readSeq(reader, 0, 3 * CS, 128 << 10), data.subarray(0, 3 * CS), 'a reader that comes back to chunks let go gets them again, right');

  // Several sequential readers of the one object at different places, a small LRU: chunk memory moves
  // back and forth under them (a read that finds its chunk's memory gone fetches it again).
  const busy = make({ memoryBytes: 2 * CS, readaheadChunks: 3 });
  await busy.startBulkReads();
  const spans: Array<[number, number]> = [[0, 12 * CS], [5 * CS + 999, 20 * CS], [11 * CS, data.length], [3 * CS, 9 * CS + 7]];
  const outs = await Promise.all(spans.map(([from, to], i) => readSeq(busy, from, to, (64 << 10) * (i + 1) + 4096)));
  spans.forEach(([from, to], i) => t.same(outs[i], data.subarray(from, to), `reader ${i} (${from}-${to}) read the true bytes`));
  t.ok(busy.bulkBuffersReturned > 0, `memory went back meanwhile (${busy.bulkBuffersReturned})`);
  t.same(failures, [], 'nothing refused');
});
