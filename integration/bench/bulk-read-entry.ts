/**
 * Bulk reads of one large file on a cold node (issue 15, deliverable 3): an image whose only layer
 * is one incompressible file (gzip, clip index with checkpoints published), read whole right after
 * `clip-snapshotter pull`, against one large GET of the same blob (`curl`, the link's speed) and
 * containerd's overlayfs full pull + read, behind the shaped link and on loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { TEST_NAMESPACE } from '../harness/containerd.js';
import { runCommand } from '../harness/run-command.js';
import type { RedisServer, Stack } from '../harness/stack.js';
import { waitUntil } from '../harness/wait.js';
import { clipPull, startNode } from '../harness/stack-node.js';
import { MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST } from '../images/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { publishIndexes } from './cold-start-entry.js';
import { startShapedRegistry } from './shaped-link.js';
import { formatSpread, spread } from './stats.js';
import { treeUsage } from './proc-util.js';
import { newEntry, type BenchEntry } from './types.js';

export interface BulkReadOptions {
  fileMib: number;
  runs: number;
  /** For the ContentCache-warm node and its raw GET-loop baseline. */
  redis: RedisServer;
  /** Parts to run (`--bulk-parts`): `cold` (both links), `cc` (the ContentCache-warm node); default both. */
  parts?: ReadonlySet<string>;
  /** Runs of the ContentCache part (`--bulk-runs`); default `runs`. */
  ccRuns?: number;
  /** Keep each ContentCache-warm node's daemon log here (`--bulk-logs`). */
  logDir?: string;
}

interface Link {
  label: string;
  host: string;
}

const FILE = 'data/weights.bin';
const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * The seconds a file takes to read whole in 1 MiB read() calls, then its sha256 from a second,
 * untimed read (the page cache by then): the reader's own hashing is not the read, and neither the
 * GET loop nor curl it is compared with hashes what it receives.
 */
async function readWhole(path: string): Promise<{ sha: string; seconds: number }> {
  const buf = Buffer.allocUnsafe(1 << 20);
  const fh = await open(path, 'r');
  let seconds: number;
  try {
    const t0 = performance.now();
    while ((await fh.read(buf, 0, buf.length, null)).bytesRead > 0);
    seconds = (performance.now() - t0) / 1000;
  } finally {
    await fh.close();
  }
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return { sha: h.digest('hex'), seconds };
}

const dropCaches = (): Promise<void> => writeFile('/proc/sys/vm/drop_caches', '3');

/** Push the one-layer image (gzip level 1: the payload is random, so it does not compress). */
async function pushImage(stack: Stack, hostPort: string, mib: number): Promise<{ ref: string; sha: string; blobDigest: string; blobBytes: number; repo: string }> {
  const dir = join(stack.root, 'bulk-layer');
  mkdirSync(join(dir, 'data'), { recursive: true });
  const payload = randomBytes(mib << 20);
  writeFileSync(join(dir, FILE), payload);
  const tarPath = `${dir}.tar`;
  await runCommand('tar', ['--format=pax', '--numeric-owner', '--mtime=@1700000000', '-C', dir, '-cf', tarPath, 'data'], { timeoutMs: 300_000 });
  const tar = readFileSync(tarPath);
  const blob = gzipSync(tar, { level: 1 });
  const repo = `${hostPort}/clip-bench/bulk`;
  const client = new RegistryClient({ plainHttp: true });
  try {
    const layer = await client.pushBlob(repo, { type: 'bytes', data: blob });
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${hex(tar)}`] } }));
    const cfg = await client.pushBlob(repo, { type: 'bytes', data: config });
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MEDIA_MANIFEST,
      config: { mediaType: MEDIA_CONFIG, digest: cfg.digest, size: cfg.size },
      layers: [{ mediaType: MEDIA_LAYER_GZIP, digest: layer.digest, size: layer.size }],
    }));
    await client.pushManifest(repo, manifest, MEDIA_MANIFEST, 'latest');
    return { ref: `${repo}:latest`, sha: hex(payload), blobDigest: layer.digest, blobBytes: layer.size, repo: 'clip-bench/bulk' };
  } finally {
    await client.close();
  }
}

/** CPU ms redis-server has used so far (INFO cpu), to charge a read the server's share. */
async function redisCpuMs(redis: RedisServer): Promise<number> {
  const info = await redis.cli('INFO', 'cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1000;
}

/** One GET after another of `keys` (ioredis, buffers): what Redis gives a plain reader; seconds and CPU ms (client, server). */
async function getLoop(redis: RedisServer, keys: string[]): Promise<{ seconds: number; cpuMs: number; redisCpuMs: number }> {
  const { Redis } = await import('ioredis');
  const client = new Redis({ port: redis.port, lazyConnect: true });
  await client.connect();
  try {
    const redis0 = await redisCpuMs(redis);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const k of keys) await client.getBuffer(k);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { seconds, cpuMs: (cpu.user + cpu.system) / 1000, redisCpuMs: (await redisCpuMs(redis)) - redis0 };
  } finally {
    client.disconnect();
  }
}

/** One large GET of the blob with curl: what the link gives a single stream. */
async function rawGet(host: string, repo: string, digest: string): Promise<number> {
  const t0 = performance.now();
  await runCommand('curl', ['-sSf', '-o', '/dev/null', `http://${host}/v2/${repo}/blobs/${digest}`], { timeoutMs: 900_000 });
  return (performance.now() - t0) / 1000;
}

/** clip cold node: pull, then read the file through its View's lower dir (the FUSE mount). */
async function clipCold(
  stack: Stack, link: Link, ref: string, name: string, redis?: RedisServer, beforeStop?: () => Promise<void>, logDir?: string,
): Promise<{ pullS: number; readS: number; sha: string; daemonCpuMs: number; redisCpuMs: number }> {
  const node = await startNode(stack, name, [link.host], { redisAddresses: redis ? [redis.address] : [], tracingEndpoint: '', metricsAddress: '', extraToml: '[cache]\nextract_completed = false\n' });
  try {
    await dropCaches();
    const t0 = performance.now();
    await clipPull(node, ref, { requireBundle: true });
    const pullS = (performance.now() - t0) / 1000;
    const ctr = (args: string[]) => runCommand('ctr', ['--address', node.containerd.address, '--namespace', TEST_NAMESPACE, ...args], { timeoutMs: 300_000 });
    const chain = (await ctr(['snapshots', '--snapshotter', 'clip', 'ls'])).stdout.split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s+/)[0]!)[0];
    if (chain === undefined) throw new Error('clip-snapshotter pull left no snapshot');
    // The View's mounts as JSON from the same call that creates it.
    const view = await ctr(['snapshots', '--snapshotter', 'clip', 'view', '--mounts', 'bulk-view', chain]);
    // containerd's mount.Mount as Go marshals it (capitalised fields).
    const m = (JSON.parse(view.stdout) as Array<{ Type: string; Source: string; Options: string[] | null }>)[0];
    const lower = m?.Options?.find((x) => x.startsWith('lowerdir='))?.slice('lowerdir='.length) ?? (m?.Type === 'bind' ? m.Source : undefined);
    if (lower === undefined) throw new Error(`no lower dir in the View over ${chain}: ${view.stdout} ${view.stderr}`);
    const path = join(lower, FILE);
    const cpu0 = treeUsage(node.snapshotter.pid()).cpuSeconds;
    const redis0 = redis ? await redisCpuMs(redis) : NaN;
    const r = await readWhole(path);
    // CPU the read cost the daemon (its FUSE server in process) and Redis: robust where wall time is not, on a shared machine.
    const daemonCpuMs = (treeUsage(node.snapshotter.pid()).cpuSeconds - cpu0) * 1000;
    const redisCpu = redis ? (await redisCpuMs(redis)) - redis0 : NaN;
    await beforeStop?.();
    return { pullS, readS: r.seconds, sha: r.sha, daemonCpuMs, redisCpuMs: redisCpu };
  } finally {
    await node.containerd.stop();
    await node.snapshotter.stop();
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      writeFileSync(join(logDir, `${name}-daemon.log`), node.snapshotter.log());
    }
  }
}

/** containerd's overlayfs: full pull (download + unpack), then the same read. */
async function overlay(stack: Stack, link: Link, ref: string, name: string): Promise<{ pullS: number; readS: number; sha: string }> {
  const c = await stack.containerd(name, {}, [link.host]);
  try {
    await dropCaches();
    const t0 = performance.now();
    await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', ref], { timeoutMs: 1_800_000 });
    const pullS = (performance.now() - t0) / 1000;
    const mnt = join(stack.root, `${name}-mnt`);
    mkdirSync(mnt, { recursive: true });
    await c.ctr(['images', 'mount', '--snapshotter', 'overlayfs', ref, mnt]);
    try {
      const r = await readWhole(join(mnt, FILE));
      return { pullS, readS: r.seconds, sha: r.sha };
    } finally {
      await c.ctr(['images', 'unmount', mnt]);
    }
  } finally {
    await c.stop();
  }
}

export async function bulkReadEntry(stack: Stack, o: BulkReadOptions, log: (s: string) => void): Promise<BenchEntry> {
  const loopback = await stack.registry('bulk-registry');
  const image = await pushImage(stack, loopback.host, o.fileMib);
  log(`bulk-read: ${o.fileMib} MiB file in one gzip layer (${(image.blobBytes / 1e6).toFixed(0)} MB blob); ${await publishIndexes(image.ref)}`);
  const part = (p: string): boolean => o.parts === undefined || o.parts.has(p);
  const shaped = part('cold') ? await startShapedRegistry(stack, '100mbit', loopback.storageDir) : undefined;
  const lb: Link = { label: 'loopback', host: loopback.host };
  const links: Link[] = shaped ? [{ label: `shaped ${shaped.rate}`, host: shaped.host }, lb] : [];
  const e = newEntry('bulk-read', `Reading one ${o.fileMib} MiB incompressible file whole on a cold node, vs one large GET of its layer`,
    ['link', 'variant', 'pull (s)', 'read (s)', 'pull + read (s)', 'MB/s of the read', 'vs one GET', 'vs overlayfs pull + read']);
  const raw: Record<string, unknown> = {};
  for (const link of links) {
    const ref = `${link.host}/${image.repo}:latest`;
    const get: number[] = [];
    const clip: Array<{ pullS: number; readS: number }> = [];
    const ovl: Array<{ pullS: number; readS: number }> = [];
    for (let i = 0; i < o.runs; i++) {
      get.push(await rawGet(link.host, image.repo, image.blobDigest));
      const c = await clipCold(stack, link, ref, `bulk-clip-${link.label.replace(/\W+/g, '')}-${i}`);
      if (c.sha !== image.sha) throw new Error(`clip read the wrong bytes (${c.sha})`);
      clip.push(c);
      const v = await overlay(stack, link, ref, `bulk-ovl-${link.label.replace(/\W+/g, '')}-${i}`);
      if (v.sha !== image.sha) throw new Error(`overlayfs read the wrong bytes (${v.sha})`);
      ovl.push(v);
      log(`bulk-read ${link.label} run ${i + 1}: GET ${get.at(-1)!.toFixed(2)} s, clip ${c.pullS.toFixed(2)} + ${c.readS.toFixed(2)} s, overlayfs ${v.pullS.toFixed(2)} + ${v.readS.toFixed(2)} s`);
    }
    const mb = image.blobBytes / 1e6;
    const getS = spread(get).median;
    const ovlTotal = spread(ovl.map((r) => r.pullS + r.readS)).median;
    e.rows.push([link.label, 'one GET of the blob (curl)', '—', formatSpread(spread(get), 2), formatSpread(spread(get), 2), Math.round(mb / getS), '1.00×', '—']);
    for (const [label, rs] of [['clip cold node', clip], ['overlayfs full pull', ovl]] as const) {
      const total = spread(rs.map((r) => r.pullS + r.readS));
      const readS = spread(rs.map((r) => r.readS));
      const throughput = label === 'clip cold node' ? Math.round(mb / readS.median) : Math.round(mb / total.median);
      e.rows.push([link.label, label, formatSpread(spread(rs.map((r) => r.pullS)), 2), formatSpread(readS, 2), formatSpread(total, 2), throughput,
        `${(getS / (label === 'clip cold node' ? readS.median : total.median)).toFixed(2)}×`, `${(total.median / ovlTotal).toFixed(2)}×`]);
    }
    raw[link.label] = { get, clip, overlay: ovl };
  }
  // The ContentCache: a cold node reads the file and completes the layer, which it publishes; a
  // second node then reads the file from Redis. Baseline: a plain loop of GETs of the same chunks.
  const lbRef = `${lb.host}/${image.repo}:latest`;
  const cc: Array<{ pullS: number; readS: number; daemonCpuMs: number; redisCpuMs: number }> = [];
  const loop: number[] = [];
  const loopCpu: Array<{ cpuMs: number; redisCpuMs: number }> = [];
  for (let i = 0; part('cc') && i < (o.ccRuns ?? o.runs); i++) {
    await o.redis.cli('flushall');
    const manifests = async (): Promise<string[]> => (await o.redis.cli('--scan', '--pattern', '*:manifest')).split('\n').filter(Boolean);
    await clipCold(stack, lb, lbRef, `bulk-cc-fill-${i}`, o.redis, () => waitUntil('the layer published to the ContentCache', async () => (await manifests()).length > 0, 600_000, 500));
    const chunkKeys = (await o.redis.cli('--scan', '--pattern', '*:[0-9]*:[0-9]*')).split('\n').filter((k) => k !== '' && !k.includes(':blob:') && !k.endsWith(':manifest') && !k.endsWith(':lock'));
    const g = await getLoop(o.redis, chunkKeys);
    loop.push(g.seconds);
    loopCpu.push({ cpuMs: g.cpuMs, redisCpuMs: g.redisCpuMs });
    const w = await clipCold(stack, lb, lbRef, `bulk-cc-warm-${i}`, o.redis, undefined, o.logDir);
    if (w.sha !== image.sha) throw new Error(`the ContentCache-warm node read the wrong bytes (${w.sha})`);
    cc.push(w);
    log(`bulk-read ContentCache run ${i + 1}: GET loop ${loop.at(-1)!.toFixed(2)} s over ${chunkKeys.length} chunks (client CPU ${g.cpuMs.toFixed(0)} ms, Redis ${g.redisCpuMs.toFixed(0)} ms), warm node ${w.pullS.toFixed(2)} + ${w.readS.toFixed(2)} s (daemon CPU ${w.daemonCpuMs.toFixed(0)} ms, Redis ${w.redisCpuMs.toFixed(0)} ms), ratio ${(g.seconds / w.readS).toFixed(2)}`);
  }
  if (!part('cc')) {
    e.raw = raw;
    return e;
  }
  const tarMb = (o.fileMib << 20) / 1e6;
  const loopS = spread(loop).median;
  e.rows.push(['Redis on loopback', 'GET loop over the layer\'s chunks', '—', formatSpread(spread(loop), 2), formatSpread(spread(loop), 2), Math.round(tarMb / loopS), '1.00×', '—']);
  const ccRead = spread(cc.map((r) => r.readS));
  e.rows.push(['Redis on loopback', 'clip ContentCache-warm node', formatSpread(spread(cc.map((r) => r.pullS)), 2), formatSpread(ccRead, 2),
    formatSpread(spread(cc.map((r) => r.pullS + r.readS)), 2), Math.round(tarMb / ccRead.median), `${(loopS / ccRead.median).toFixed(2)}×`, '—']);
  raw.contentCache = { loop, loopCpu, warm: cc };
  const med = (xs: number[]): string => spread(xs).median.toFixed(0);
  e.notes.push(`CPU during the ContentCache reads (medians): the warm node's daemon ${med(cc.map((r) => r.daemonCpuMs))} ms and Redis ${med(cc.map((r) => r.redisCpuMs))} ms; the GET loop's client ${med(loopCpu.map((r) => r.cpuMs))} ms and Redis ${med(loopCpu.map((r) => r.redisCpuMs))} ms (daemon CPU from /proc in 10 ms ticks; it includes the FUSE server, in process here).`);
  e.notes.push('ContentCache rows: MB/s of the file\'s bytes; "vs one GET" there is the share of a plain loop of GETs (one at a time, ioredis) of the layer\'s chunk keys, measured right before on the same Redis (goal ≥ 0.80×).');
  e.notes.push(`The file is read with 1 MiB read() calls, page cache dropped before each pull, and hashed afterwards in a second, untimed read (neither the GET loop nor curl hashes what it receives). "MB/s of the read" is compressed layer bytes over the read's time (for clip: the read alone, the pull before it fetches none of the file; for overlayfs: pull + read). "vs one GET" is the GET's MB/s share reached (goal ≥ 0.80×); "vs overlayfs" is time from pull start to the end of the read (goal ≤ 1.00×).`);
  e.raw = raw;
  return e;
}
