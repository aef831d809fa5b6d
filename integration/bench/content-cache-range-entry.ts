/**
 * ContentCache range-read latency (issue 5, item 6): p50/p99 of 4 KiB, 64 KiB and 1 MiB reads through
 * `RedisContentCache.readInto` against a raw Redis `GETRANGE` of the same bytes, stored as one plain
 * string key, on a local redis-server. One read in flight at a time; the same offsets for both sides.
 */
import { closeSync, openSync, readdirSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisContentCache, loadMacKeys, type RedisContentCacheOptions } from '../../snapshotter/src/contentcache/index.js';
import { writeClusterKey } from '../harness/clip-node.js';
import type { Stack } from '../harness/stack.js';
import { round } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

export interface RangeReadOptions {
  blobMb: number;
  samples: number;
}

interface Variant {
  label: string;
  key: string;
  opts: Partial<RedisContentCacheOptions>;
  sequential: boolean;
}

const SIZES = [4 << 10, 64 << 10, 1 << 20];
const sizeLabel = (n: number): string => (n >= 1 << 20 ? `${n >> 20} MiB` : `${n >> 10} KiB`);

/** Real, moderately compressible bytes: the host's executables, concatenated. */
function sampleBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  let at = 0;
  for (const dir of ['/usr/bin', '/usr/lib/x86_64-linux-gnu', '/usr/sbin']) {
    for (const name of readdirSync(dir).sort()) {
      if (at >= size) return out;
      const path = join(dir, name);
      try {
        if (!statSync(path).isFile()) continue;
        const fd = openSync(path, 'r');
        try {
          at += readSync(fd, out, at, size - at, 0);
        } finally {
          closeSync(fd);
        }
      } catch {
        // unreadable: skip
      }
    }
  }
  return out;
}

/** Percentile by nearest rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** `count` offsets for reads of `size`: pseudo-random (fixed LCG, aligned to `size`) or sequential. */
function offsets(total: number, size: number, count: number, sequential: boolean): number[] {
  const slots = Math.floor(total / size);
  const out: number[] = [];
  let x = 12345;
  for (let i = 0; i < count; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push((sequential ? i % slots : x % slots) * size);
  }
  return out;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) * 1000;
}

interface Measured {
  p50: number;
  p99: number;
}

function summarize(us: number[]): Measured {
  const s = [...us].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p99: percentile(s, 99) };
}

export async function contentCacheRangeEntry(stack: Stack, address: string, o: RangeReadOptions, log: (s: string) => void): Promise<BenchEntry> {
  const e = newEntry('cc-range', 'ContentCache range-read latency vs raw Redis GETRANGE (µs, one read in flight)',
    ['read', 'ContentCache variant', 'readInto p50', 'readInto p99', 'GETRANGE p50', 'GETRANGE p99', 'p50 ratio', 'p99 ratio', 'goal ≤ 1.5×', 'CPU µs per readInto']);
  const size = o.blobMb << 20;
  const data = sampleBytes(size);
  const path = join(stack.root, 'cc-range.bin');
  writeFileSync(path, data);
  const [host, port] = address.split(':');
  const raw = new Redis({ host, port: Number(port), lazyConnect: false });
  stack.add('cc-range raw client', async () => void raw.disconnect());
  await raw.set('bench:raw', data);
  const base = { addresses: [address], cluster: false, username: '', password: '', tls: false, timeoutMs: 5_000 };
  const mac = loadMacKeys(await writeClusterKey(stack.root));
  const variants: Variant[] = [
    { label: 'random offsets, 4 MiB chunks (default), chunk fetched every read', key: 'bench-4m', opts: { memoryBytes: 1, readaheadChunks: 0 }, sequential: false },
    { label: 'random offsets, 64 KiB chunks, chunk fetched every read', key: 'bench-64k', opts: { chunkSizeBytes: 64 << 10, memoryBytes: 1, readaheadChunks: 0 }, sequential: false },
    { label: 'sequential reader, defaults (chunk LRU + read-ahead 2)', key: 'bench-4m', opts: {}, sequential: true },
    // The same two default-chunk readers with a cluster key: each chunk SHA-256-checked against its
    // signed manifest (issue 12's cost of verification).
    { label: 'random offsets, 4 MiB chunks (default), chunk fetched every read, cluster key', key: 'bench-4m-key', opts: { memoryBytes: 1, readaheadChunks: 0, mac }, sequential: false },
    // Chunks signed whole (v2 manifests, before 256 KiB pieces): every read hashes its whole chunk.
    { label: 'random offsets, 4 MiB chunks (default), chunk fetched every read, cluster key, whole-chunk digests', key: 'bench-4m-key-v2', opts: { memoryBytes: 1, readaheadChunks: 0, mac, pieceBytes: 0 }, sequential: false },
    { label: 'sequential reader, defaults (chunk LRU + read-ahead 2), cluster key', key: 'bench-4m-key', opts: { mac }, sequential: true },
  ];
  const compressed: Record<string, number> = {};
  const keyCost: string[] = [];
  for (const v of variants) {
    const cc = new RedisContentCache({ ...base, ...v.opts });
    stack.add(`cc-range ${v.key}`, () => cc.close());
    if (!(await cc.has(v.key, size))) {
      const r = await cc.storeFile(v.key, path, size);
      if (r && r.type === 'stored') compressed[v.key] = r.storedBytes;
    }
    for (const n of SIZES) {
      log(`cc-range: ${sizeLabel(n)} ${v.label}`);
      const offs = offsets(size, n, o.samples, v.sequential);
      const buf = Buffer.alloc(n);
      await cc.readInto(v.key, 0, n, buf, 0); // manifest + connection warm
      await raw.getrangeBuffer('bench:raw', 0, n - 1);
      const ccUs: number[] = [];
      const rawUs: number[] = [];
      // Not interleaved: the ContentCache side allocates whole chunks, and its GC pauses would land
      // in the baseline's samples.
      for (const off of offs) rawUs.push(await time(() => raw.getrangeBuffer('bench:raw', off, off + n - 1)));
      // CPU of this process (event loop, workers, libuv's pool) per read: what verification costs
      // in work, which a machine shared with other jobs does not blur as it blurs latency.
      const cpu0 = process.cpuUsage();
      for (const off of offs) {
        ccUs.push(await time(async () => {
          if ((await cc.readInto(v.key, off, n, buf, 0)) !== n) throw new Error(`short ContentCache read at ${off}`);
        }));
      }
      if (!buf.equals(data.subarray(offs.at(-1)!, offs.at(-1)! + n))) throw new Error('ContentCache returned different bytes');
      const cpuDelta = process.cpuUsage(cpu0);
      const cpuPerRead = (cpuDelta.user + cpuDelta.system) / offs.length;
      const c = summarize(ccUs);
      const r = summarize(rawUs);
      const ratio50 = c.p50 / r.p50;
      const ratio99 = c.p99 / r.p99;
      e.rows.push([sizeLabel(n), v.label, round(c.p50, 0), round(c.p99, 0), round(r.p50, 0), round(r.p99, 0), `${ratio50.toFixed(2)}×`, `${ratio99.toFixed(2)}×`,
        ratio50 <= 1.5 && ratio99 <= 1.5 ? 'met' : 'missed', round(cpuPerRead, 0)]);
      e.raw[`${v.key}${v.sequential ? '-seq' : ''}-${n}`] = { contentCache: c, raw: r, cpuUsPerRead: cpuPerRead };
      const plain = e.raw[`bench-4m${v.sequential ? '-seq' : ''}-${n}`] as { contentCache: Measured; cpuUsPerRead: number } | undefined;
      if (v.opts.mac && plain) {
        const how = `${v.sequential ? 'sequential' : 'random'}${v.opts.pieceBytes === 0 ? ', whole-chunk digests' : ''}`;
        keyCost.push(`${sizeLabel(n)} ${how}: ${round(plain.contentCache.p50, 0)} → ${round(c.p50, 0)} µs p50 (${(c.p50 / plain.contentCache.p50).toFixed(2)}×), CPU ${round(plain.cpuUsPerRead, 0)} → ${round(cpuPerRead, 0)} µs per read`);
      }
    }
  }
  const def = variants[0]!;
  e.charts.push({
    title: 'ContentCache range read p50 (µs), default chunks, chunk fetched every read', lowerIsBetter: true,
    bars: SIZES.flatMap((n) => {
      const m = e.raw[`${def.key}-${n}`] as { contentCache: Measured; raw: Measured };
      return [{ label: `${sizeLabel(n)} readInto`, value: m.contentCache.p50, unit: 'µs' }, { label: `${sizeLabel(n)} GETRANGE`, value: m.raw.p50, unit: 'µs', baseline: true }];
    }),
  });
  e.notes.push(
    `${o.blobMb} MiB blob of this host's executables (stored ${Object.entries(compressed).map(([k, b]) => `${k}: ${(b / 1e6).toFixed(1)} MB LZ4`).join(', ') || 'already present'}); the same bytes as one plain string key for GETRANGE. ${o.samples} reads per row; local redis-server over loopback; one ioredis client each.`,
    `cost of a cluster key (\`[content_cache] key_file\`: the SHA-256s in an HMAC-signed manifest checked — of the 256 KiB pieces a read covers, or, with whole-chunk digests, of its whole chunk) on the default-chunk readers: ${keyCost.join('; ')}.`,
    '"chunk fetched every read" disables the decoded-chunk LRU and read-ahead (memoryBytes 1, readaheadChunks 0): each read pays GET of its chunk(s) + LZ4 decode + CRC check, the worst case. A real FUSE reader is mostly sequential and served from the LRU (last variant).',
  );
  return e;
}
