/** Test doubles for the storage layer: in-memory blob sources with faults, a recording ContentCache. */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable, addAbortSignal } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { pino } from 'pino';
import { NoContentCache, type ContentCache } from '../../src/contentcache/index.js';
import { unavailable } from '../../src/errors/index.js';
import type { Logger } from '../../src/log/index.js';
import type { Clock } from '../../src/util/clock.js';
import type { BlobSource, LayerRef, LayerStoreOptions } from '../../src/storage/index.js';

/** A ustar archive with one regular file of `size` random bytes. */
export function makeTar(size: number, name = 'data.bin'): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'ascii');
  header.write('0000644\0', 100, 'ascii');
  header.write('0000000\0', 108, 'ascii');
  header.write('0000000\0', 116, 'ascii');
  header.write(size.toString(8).padStart(11, '0') + '\0', 124, 'ascii');
  header.write('00000000000\0', 136, 'ascii');
  header.write('        ', 148, 'ascii');
  header.write('0', 156, 'ascii');
  header.write('ustar\0' + '00', 257, 'ascii');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  const padded = Math.ceil(size / 512) * 512;
  const body = Buffer.alloc(padded);
  randomBytes(size).copy(body);
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}

export interface TestLayer {
  tar: Buffer;
  blob: Buffer;
  ref: LayerRef;
  hex: string;
}

/** A gzip'd tar layer (or another encoding of the same tar) with its LayerRef. */
export function makeLayer(size = 1 << 20, encode: (tar: Buffer) => Buffer = (b) => gzipSync(b)): TestLayer {
  const tar = makeTar(size);
  const blob = encode(tar);
  const hex = createHash('sha256').update(tar).digest('hex');
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  return { tar, blob, hex, ref: { ref: 'registry.test/app:1', digest, diffId: `sha256:${hex}`, uncompressedSize: tar.length } };
}

/** How the fake registry misbehaves; counters drop as attempts consume them. */
export interface FakeBehaviour {
  chunkSize?: number;
  delayMs?: number;
  /** Fail this many opens with a connection error. */
  failOpens?: number;
  /** This many opens return a stream that never delivers a byte. */
  hangOpens?: number;
  /** Serve these bytes instead of the blob. */
  wrongBytes?: Buffer;
  /** After the first chunk, wait for this before sending the rest. */
  gateAfterFirstChunk?: Promise<void>;
  /** Send nothing until this resolves (a download that is alive but slow, for as long as the test says). */
  gateBeforeFirstChunk?: Promise<void>;
  missing?: boolean;
}

/** An in-memory registry for one or more blobs, served in slow chunks, counting opens. */
export class FakeBlobSource implements BlobSource {
  /** Claim the registry client's digest check (the fake serves `wrongBytes` unchecked). */
  verifiesDigest = false;
  opens = 0;
  heads = 0;
  readonly #blobs = new Map<string, Buffer>();
  behaviour: FakeBehaviour;

  constructor(layers: TestLayer[], behaviour: FakeBehaviour = {}) {
    for (const l of layers) this.#blobs.set(l.ref.digest, l.blob);
    this.behaviour = behaviour;
  }

  async open(ref: LayerRef, signal: AbortSignal): Promise<Readable> {
    this.opens++;
    const b = this.behaviour;
    const blob = this.#blobs.get(ref.digest);
    if (b.failOpens && b.failOpens > 0) {
      b.failOpens--;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    }
    if (!blob || b.missing) throw unavailable('CLIP_REGISTRY_UNAVAILABLE', `blob ${ref.digest}`);
    if (b.hangOpens && b.hangOpens > 0) {
      b.hangOpens--;
      return addAbortSignal(signal, new Readable({ read() {} }));
    }
    const bytes = b.wrongBytes ?? blob;
    return addAbortSignal(signal, Readable.from(chunks(bytes, b.chunkSize ?? 16 * 1024, b.delayMs ?? 0, b.gateAfterFirstChunk, b.gateBeforeFirstChunk)));
  }

  async exists(ref: LayerRef): Promise<boolean> {
    this.heads++;
    return this.#blobs.has(ref.digest) && !this.behaviour.missing;
  }
}

async function* chunks(bytes: Buffer, size: number, delayMs: number, gate?: Promise<void>, gateBefore?: Promise<void>): AsyncGenerator<Buffer> {
  if (gateBefore) await gateBefore;
  for (let off = 0; off < bytes.length; off += size) {
    if (off > 0 && gate) await gate;
    if (off > 0 && delayMs > 0) await sleep(delayMs);
    yield bytes.subarray(off, off + size);
  }
}

export type CacheMode = 'miss' | 'hit' | 'unavailable';

/** A ContentCache that records every call; serves `objects` in `hit` mode. */
export class RecordingContentCache implements ContentCache {
  readonly name = 'recording';
  readonly calls: Array<{ op: string; key: string; args: unknown[] }> = [];
  readonly objects = new Map<string, Buffer>();
  mode: CacheMode;

  constructor(mode: CacheMode = 'miss') {
    this.mode = mode;
  }

  async readInto(key: string, offset: number, length: number, buf: Buffer, bufOffset: number): Promise<number | undefined> {
    this.calls.push({ op: 'readInto', key, args: [offset, length] });
    if (this.mode === 'unavailable') throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'recording cache');
    const obj = this.objects.get(key);
    if (this.mode !== 'hit' || !obj) return undefined;
    return obj.copy(buf, bufOffset, offset, Math.min(obj.length, offset + length));
  }
  async has(key: string, size: number): Promise<boolean> {
    this.calls.push({ op: 'has', key, args: [size] });
    if (this.mode === 'unavailable') throw unavailable('CLIP_CONTENT_CACHE_UNAVAILABLE', 'recording cache');
    return this.objects.get(key)?.length === size;
  }
  async storeFile(key: string, path: string, size: number): Promise<void> {
    this.calls.push({ op: 'storeFile', key, args: [path, size] });
  }
  async getBlob(): Promise<Buffer | undefined> {
    return undefined;
  }
  async putBlob(): Promise<void> {}
  async close(): Promise<void> {}
}

/** A pino logger that keeps its records for assertions. */
export function recordingLogger(): { log: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), records };
}

/**
 * LayerStore options for a test: no ContentCache, a 15 s read deadline, fast retries; `extra` wins.
 * The deadline is generous because a cached layer's first read waits for its hash on a worker
 * thread, whose start can take seconds on a loaded 2-core machine; tests of the deadline set their own.
 */
export function storeOptions(cacheDir: string, blobs: FakeBlobSource, extra: Partial<LayerStoreOptions> = {}): LayerStoreOptions {
  return { cacheDir, blobs, contentCache: new NoContentCache(), readTimeoutMs: 15_000, retryBaseDelayMs: 10, ...extra };
}

export async function tempDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-storage-'));
  // Retries: a store closed by a later teardown may still be writing a sparse layer's record.
  t.teardown(() => rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 50 }));
  return dir;
}

/** Read `length` bytes at `offset` through a reader into a fresh buffer. */
export async function readRange(r: { read(b: Buffer, bo: number, l: number, o: number): Promise<number> }, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const n = await r.read(buf, 0, length, offset);
  return buf.subarray(0, n);
}

/**
 * A clock the test drives: time moves only when code sleeps on it (a sleep advances it by the
 * amount asked and returns at once), every sleep is recorded, and from the `holdFrom`-th sleep on
 * sleeps wait until their signal aborts, so a test can stop code in the middle of a wait.
 */
export class ManualClock implements Clock {
  now = 1_000_000;
  readonly slept: number[] = [];
  /** Index of the first sleep to hold (Infinity: none). */
  holdFrom = Infinity;
  /** Held sleeps that ended because their signal aborted. */
  aborted = 0;
  readonly #heldWaiters: Array<() => void> = [];
  #heldCount = 0;

  nowMs = (): number => this.now;

  sleep = (ms: number, signal?: AbortSignal): Promise<void> => {
    signal?.throwIfAborted();
    const index = this.slept.length;
    this.slept.push(ms);
    if (index < this.holdFrom) {
      this.now += ms;
      return Promise.resolve();
    }
    this.#heldCount++;
    for (const w of this.#heldWaiters.splice(0)) w();
    return new Promise<void>((_resolve, reject) => {
      signal?.addEventListener('abort', () => {
        this.aborted++;
        reject(signal.reason);
      }, { once: true });
    });
  };

  /** Resolves once some code is waiting in a held sleep. */
  held(): Promise<void> {
    if (this.#heldCount > 0) return Promise.resolve();
    return new Promise((resolve) => this.#heldWaiters.push(resolve));
  }
}

/**
 * Wait for background work the code under test does not let us await: poll `cond` until it holds,
 * failing after a generous deadline (a hung test is not a passing one).
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`not within ${deadlineMs} ms: ${what}`);
    await sleep(10);
  }
}

/**
 * A clock time moves on only when the test says so (`advance`): a sleep resolves once the time
 * reaches its end (or rejects when its signal aborts). `sleeping` counts the pending sleeps.
 */
export class SteppedClock implements Clock {
  now = 1_000_000;
  readonly #sleeps = new Set<{ until: number; resolve: () => void }>();

  nowMs = (): number => this.now;

  sleep = (ms: number, signal?: AbortSignal): Promise<void> => {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const s = { until: this.now + ms, resolve: () => resolve() };
      this.#sleeps.add(s);
      signal?.addEventListener('abort', () => {
        this.#sleeps.delete(s);
        reject(signal.reason);
      }, { once: true });
    });
  };

  /** Sleeps not yet ended. */
  get sleeping(): number {
    return this.#sleeps.size;
  }

  /** Move time on by `ms`, ending the sleeps that reach their end. */
  advance(ms: number): void {
    this.now += ms;
    for (const s of [...this.#sleeps]) {
      if (s.until > this.now) continue;
      this.#sleeps.delete(s);
      s.resolve();
    }
  }
}
