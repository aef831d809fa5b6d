/**
 * (d) Cold start over a shaped link: pull start → first container output, and registry bytes,
 * clip (cold node; and a second node whose ContentCache was warmed by the first) vs containerd's
 * overlayfs with a full pull and vs stargz-snapshotter on an eStargz copy of the image (the lazy-pull
 * peer). (e) Daemon RSS after each lazy run, with its FUSE mounts counted.
 */
import type { Stack, RedisServer } from '../harness/stack.js';
import { clipPull, remoteSnapshotCount, runArgs, startNode, timeFirstOutput, type ClipNode, type PullSummary } from '../harness/stack-node.js';
import { AccessLogCursor, formatBytes } from '../harness/registry-bytes.js';
import type { Containerd } from '../harness/containerd.js';
import { mountsUnder } from '../harness/mounts.js';
import { runCommand } from '../harness/run-command.js';
import { writeClusterKey } from '../harness/clip-node.js';
import type { PushedImage } from '../images/index.js';
import { runNodeScript, rssBytes } from './proc-util.js';
import { LayerBytesCursor } from './layer-bytes.js';
import type { ShapedRegistry } from './shaped-link.js';
import { convertToEstargz, haveCtrRemote, rpull, startStargzNode, stargzPull, stargzRemoteSnapshots, STARGZ_SNAPSHOTTER, type EstargzImage } from './stargz-peer.js';
import { formatSpread, spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Variant =
  | 'overlayfs full pull'
  | 'stargz cold node (eStargz)'
  | 'clip cold node, whole-layer reads'
  | 'clip cold node (defaults: range reads)'
  | 'clip cold node, start profile in ContentCache'
  | 'clip ContentCache-warm node'
  | 'clip cold node (range reads), cluster key'
  | 'clip cold node, whole-layer reads, cluster key'
  | 'clip ContentCache-warm node, cluster key';
const STARGZ: Variant = 'stargz cold node (eStargz)';
const RANGE: Variant = 'clip cold node (defaults: range reads)';
const PROFILED: Variant = 'clip cold node, start profile in ContentCache';
const WHOLE: Variant = 'clip cold node, whole-layer reads';
const WARM: Variant = 'clip ContentCache-warm node';
// With `[content_cache] key_file`: every ContentCache object signed and checked (issue 12).
const RANGE_KEYED: Variant = 'clip cold node (range reads), cluster key';
const WHOLE_KEYED: Variant = 'clip cold node, whole-layer reads, cluster key';
const WARM_KEYED: Variant = 'clip ContentCache-warm node, cluster key';
const KEYED: Variant[] = [RANGE_KEYED, WHOLE_KEYED, WARM_KEYED];
const VARIANTS: Variant[] = ['overlayfs full pull', STARGZ, RANGE, PROFILED, WHOLE, WARM, RANGE_KEYED, WHOLE_KEYED, WARM_KEYED];
/** The range-read variants issue 8's goals are about (whole-layer reads are the old baseline). */
const COLD_CLIP: Variant[] = [RANGE, PROFILED];
/** Each clip variant's config on top of the defaults (which range-read layers with checkpoints). */
const VARIANT_TOML: Partial<Record<Variant, string>> = { [WHOLE]: '\n[index]\nrange_reads = false\n', [WHOLE_KEYED]: '\n[index]\nrange_reads = false\n' };

interface Run {
  variant: Variant;
  seconds: number;
  registryBytes: number;
  /** Of those, bytes of the image's layer blobs. */
  layerBytes?: number;
  layers?: string;
  rssBytes?: number;
  fuseMounts?: number;
  /** Bytes on disk in the node's layer cache after the run: the spans it fetched and checked. */
  cachedBytes?: number;
}

export interface ColdStartOptions {
  registry: ShapedRegistry;
  redis: RedisServer;
  image: PushedImage;
  cmd: string[];
  runs: number;
  /** Only the clip variants the verification entry compares (no overlayfs, stargz or profile runs). */
  verificationOnly?: boolean;
}

async function stopNode(c: Containerd, n?: ClipNode): Promise<void> {
  await c.stop();
  if (n) await n.snapshotter.stop();
}

async function overlayRun(stack: Stack, o: ColdStartOptions, cursor: AccessLogCursor, layers: LayerBytesCursor, i: number): Promise<Run> {
  const c = await stack.containerd(`cs-ovl-${i}`, {}, [o.registry.host]);
  cursor.mark();
  layers.mark();
  const t0 = performance.now();
  await c.ctr(['images', 'pull', '--plain-http', '--snapshotter', 'overlayfs', o.image.ref], { timeoutMs: 900_000 });
  const run = await timeFirstOutput(c, runArgs(c, 'overlayfs', o.image.ref, `ovl-${i}`, o.cmd));
  const seconds = (performance.now() - t0 - (run.totalMs - run.firstOutputMs)) / 1000;
  const r: Run = { variant: 'overlayfs full pull', seconds, registryBytes: cursor.since().blobBytes, layerBytes: layers.since() };
  await stopNode(c);
  return r;
}

/** stargz's node: eStargz image, `ctr-remote images rpull`, the same run; bytes of the eStargz layer blobs. */
async function stargzRun(stack: Stack, o: ColdStartOptions, esgz: EstargzImage, cursor: AccessLogCursor, layers: LayerBytesCursor, i: number): Promise<Run> {
  const node = await startStargzNode(stack, `cs-stargz-${i}`, o.registry.host);
  cursor.mark();
  layers.mark();
  const t0 = performance.now();
  await stargzPull(node, esgz.ref);
  const run = await timeFirstOutput(node.containerd, runArgs(node.containerd, STARGZ_SNAPSHOTTER, esgz.ref, `stargz-${i}`, o.cmd));
  const seconds = (performance.now() - t0 - (run.totalMs - run.firstOutputMs)) / 1000;
  const registryBytes = cursor.since().blobBytes;
  const layerBytes = layers.since();
  const rss = rssBytes(node.pid());
  const fuseMounts = node.fuseMounts();
  const lazy = await stargzRemoteSnapshots(node);
  const r: Run = { variant: STARGZ, seconds, registryBytes, layerBytes, layers: `${lazy} lazy / ${esgz.layers.length - lazy} full`, rssBytes: rss, fuseMounts };
  await node.stop();
  return r;
}

const layerCell = (p: PullSummary): string => `${p.lazy} lazy / ${p.full} full${p.present ? ` / ${p.present} present` : ''}`;

async function clipRun(stack: Stack, o: ColdStartOptions, cursor: AccessLogCursor, layers: LayerBytesCursor, name: string, variant: Variant, keyFile?: string): Promise<Run> {
  const extraToml = VARIANT_TOML[variant] ?? '';
  // The variants without a key are the CRC-only ContentCache, which a node runs only when told to.
  const keyed = KEYED.includes(variant) && keyFile !== undefined ? { keyFile } : { allowUnverified: true };
  const node = await startNode(stack, name, [o.registry.host], { redisAddresses: [o.redis.address], tracingEndpoint: '', metricsAddress: '', extraToml, ...keyed });
  cursor.mark();
  layers.mark();
  const t0 = performance.now();
  // The same pull client as the stargz peer when it is built (containerd's Go client with remote
  // labels, as CRI pulls); `clip-snapshotter pull` otherwise (≈ 0.2 s more: a Node process starts).
  const pull = haveCtrRemote() ? await rpull(node.containerd, 'clip', o.image.ref) : await clipPull(node, o.image.ref, { requireBundle: true });
  const run = await timeFirstOutput(node.containerd, runArgs(node.containerd, 'clip', o.image.ref, name, o.cmd));
  const seconds = (performance.now() - t0 - (run.totalMs - run.firstOutputMs)) / 1000;
  const lazy = pull ? layerCell(pull) : `${await remoteSnapshotCount(node.containerd)} lazy / ${o.image.layers.length} layers`;
  const r: Run = {
    variant, seconds, registryBytes: cursor.since().blobBytes, layerBytes: layers.since(), layers: lazy,
    rssBytes: rssBytes(node.snapshotter.pid()), fuseMounts: mountsUnder(node.snapshotter.root).filter((m) => m.fsType.startsWith('fuse')).length,
    cachedBytes: await allocatedBytes(join(node.snapshotter.root, 'cache')),
  };
  await stopNode(node.containerd, node);
  return r;
}

/** Bytes allocated on disk under `dir` (sparse files count what was written, not their length). */
async function allocatedBytes(dir: string): Promise<number> {
  const r = await runCommand('du', ['-s', '-B1', dir], { allowFailure: true });
  return r.code === 0 ? Number(r.stdout.split(/\s+/)[0]) : 0;
}

/** MB/s of this process's SHA-256 over 64 MiB: the hash every range-read span is checked with. */
function sha256Throughput(): number {
  const data = Buffer.alloc(64 << 20, 7);
  createHash('sha256').update(data.subarray(0, 1 << 20)).digest();
  const t0 = performance.now();
  // Spans are hashed one at a time, each up to a few MiB: hash in 4 MiB pieces, as they are.
  for (let at = 0; at < data.length; at += 4 << 20) createHash('sha256').update(data.subarray(at, at + (4 << 20))).digest();
  return data.length / 1e6 / ((performance.now() - t0) / 1000);
}

/**
 * Delete every ContentCache key but the start profiles (layer objects and cached indexes go), so
 * the next node is cold in every way except that another node recorded what the image reads.
 */
async function keepOnlyProfiles(redis: RedisServer): Promise<number> {
  const cli = (args: string[]) => runCommand('redis-cli', ['-p', String(redis.port), ...args], { allowFailure: true });
  const keys = (await cli(['--scan', '--pattern', '*'])).stdout.split('\n').filter(Boolean);
  const drop = keys.filter((k) => !k.includes(':blob:profile:'));
  for (let i = 0; i < drop.length; i += 500) await cli(['del', ...drop.slice(i, i + 500)]);
  return keys.length - drop.length;
}

/** Publish the image's clip indexes ahead of time if this build has `clip-snapshotter index`; returns a note. */
export async function publishIndexes(ref: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'clip-bench-index-'));
  const cfg = join(dir, 'config.toml');
  writeFileSync(cfg, '[index]\ngzip_checkpoints = true\n');
  const r = await runNodeScript('snapshotter/bin/clip-snapshotter', ['index', ref, '--plain-http', '--config', cfg], { allowFailure: true, timeoutMs: 900_000 });
  rmSync(dir, { recursive: true, force: true });
  if (r.code === 0) return 'clip indexes (with gzip checkpoints for layers ≥ 8 MiB) were published to the registry beforehand with `clip-snapshotter index` (as a CI pipeline would)';
  return `no published indexes (\`clip-snapshotter index\` unavailable or failed: ${(r.stderr.trim().split('\n')[0] ?? '').slice(0, 120)}); each clip node builds them from the layer stream`;
}

/**
 * `verification` on its own: the clip cold (range, whole-layer) and ContentCache-warm nodes with and
 * without a cluster key, interleaved, without the baselines the cold-start entry also runs.
 */
export async function verificationOnlyEntry(stack: Stack, o: ColdStartOptions, log: (s: string) => void): Promise<BenchEntry> {
  const { verification } = await coldStartEntry(stack, { ...o, verificationOnly: true }, log);
  return verification;
}

export async function coldStartEntry(stack: Stack, o: ColdStartOptions, log: (s: string) => void): Promise<{ cold: BenchEntry; rss: BenchEntry; verification: BenchEntry }> {
  const full = o.verificationOnly !== true;
  const e = newEntry('cold-start', `Cold start over a ${o.registry.rate} shaped link: pull start → first output of \`${o.cmd.join(' ')}\``,
    ['variant', 'time to first output (s)', 'registry bytes (median)', 'of which layer blobs', 'layers', 'vs overlayfs', 'vs stargz']);
  const indexNote = await publishIndexes(o.image.ref);
  // The peer is measured where it can be set up; without it the other variants still run.
  let esgz: EstargzImage | undefined;
  let stargzNote = 'stargz peer not measured (verification only)';
  if (full) {
    try {
      log(`converting ${o.image.ref} to eStargz with ctr-remote`);
      esgz = await convertToEstargz(stack, o.registry.host, o.image);
      const size = esgz.layers.reduce((s, l) => s + l.size, 0);
      stargzNote = `stargz peer: stargz-snapshotter 0.12 (Debian's library) served by integration/go/stargzref with its default fs settings (prefetch and background fetch on), the image converted with \`ctr-remote image convert --estargz --oci\` (no \`optimize\` prioritisation, so no prefetch landmark) and pushed as ${esgz.ref} (${esgz.layers.length} layer(s), ${formatBytes(size)}); pulled with \`ctr-remote images rpull --plain-http\`.`;
    } catch (err) {
      stargzNote = `stargz peer not measured: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]?.slice(0, 200)}`;
      log(stargzNote);
    }
  }
  const cursor = new AccessLogCursor(o.registry.logPath);
  const layerCursor = new LayerBytesCursor(o.registry.logPath, o.image.layers.map((l) => l.digest));
  const esgzCursor = new LayerBytesCursor(o.registry.logPath, esgz?.layers.map((l) => l.digest) ?? []);
  const runs: Run[] = [];
  const keyFile = await writeClusterKey(stack.root);
  for (let i = 0; i < o.runs; i++) {
    if (full) {
      log(`cold start run ${i + 1}/${o.runs}: overlayfs`);
      runs.push(await overlayRun(stack, o, cursor, layerCursor, i));
    }
    if (esgz) {
      log(`cold start run ${i + 1}/${o.runs}: stargz`);
      runs.push(await stargzRun(stack, o, esgz, cursor, esgzCursor, i));
    }
    await runCommand('redis-cli', ['-p', String(o.redis.port), 'flushall'], { allowFailure: true });
    log(`cold start run ${i + 1}/${o.runs}: ${RANGE}`);
    runs.push(await clipRun(stack, o, cursor, layerCursor, `cs-range-${i}`, RANGE));
    if (full) {
      const profiles = await keepOnlyProfiles(o.redis);
      log(`cold start run ${i + 1}/${o.runs}: ${PROFILED} (${profiles} profile(s) kept)`);
      runs.push(await clipRun(stack, o, cursor, layerCursor, `cs-prof-${i}`, PROFILED));
    }
    await runCommand('redis-cli', ['-p', String(o.redis.port), 'flushall'], { allowFailure: true });
    log(`cold start run ${i + 1}/${o.runs}: ${WHOLE}`);
    runs.push(await clipRun(stack, o, cursor, layerCursor, `cs-clip-${i}`, WHOLE));
    log(`cold start run ${i + 1}/${o.runs}: clip ContentCache-warm node`);
    runs.push(await clipRun(stack, o, cursor, layerCursor, `cs-warm-${i}`, WARM));
    // The same three clip nodes with a cluster key: what checking every ContentCache object costs.
    for (const [v, tag] of [[RANGE_KEYED, 'krange'], [WHOLE_KEYED, 'kclip'], [WARM_KEYED, 'kwarm']] as const) {
      if (v !== WARM_KEYED) await runCommand('redis-cli', ['-p', String(o.redis.port), 'flushall'], { allowFailure: true });
      log(`cold start run ${i + 1}/${o.runs}: ${v}`);
      runs.push(await clipRun(stack, o, cursor, layerCursor, `cs-${tag}-${i}`, v, keyFile));
    }
  }
  const of = (v: Variant): Run[] => runs.filter((r) => r.variant === v);
  const measured = VARIANTS.filter((v) => of(v).length > 0);
  const median = (v: Variant, f: (r: Run) => number): number => spread(of(v).map(f)).median;
  const base = spread(of('overlayfs full pull').map((r) => r.seconds));
  const peer = esgz ? median(STARGZ, (r) => r.seconds) : NaN;
  for (const v of measured) {
    const s = spread(of(v).map((r) => r.seconds));
    const layers = [...new Set(of(v).map((r) => r.layers ?? 'full (unpacked by containerd)'))].join('; ');
    const vsPeer = Number.isNaN(peer) ? 'n/a' : `${(s.median / peer).toFixed(2)}×`;
    e.rows.push([v, formatSpread(s, 2), formatBytes(median(v, (r) => r.registryBytes)), formatBytes(median(v, (r) => r.layerBytes ?? 0)), layers, v.startsWith('overlayfs') ? '1.00×' : `${(s.median / base.median).toFixed(2)}×`, vsPeer]);
  }
  e.charts.push({
    title: `Cold start, pull → first output (s), ${o.registry.rate}`, lowerIsBetter: true,
    bars: measured.map((v) => ({ label: v, value: median(v, (r) => r.seconds), unit: 's', baseline: v.startsWith('overlayfs') })),
  });
  const sizes = { compressed: o.image.layers.reduce((s, l) => s + l.size, 0), uncompressed: o.image.layers.reduce((s, l) => s + l.uncompressedSize, 0) };
  e.notes.push(
    `image ${o.image.name}: ${o.image.layers.length} layer(s), ${formatBytes(sizes.compressed)} compressed, ${formatBytes(sizes.uncompressed)} uncompressed; registry in its own network namespace, tc tbf ${o.registry.rate} burst 128kb latency 100ms on both veth ends.`,
    `${o.runs} runs per variant, interleaved; every run on a fresh containerd (+ fresh clip or stargz daemon), Redis flushed before each cold clip run; the warm node reads what the cold node put in Redis.`,
    indexNote,
    haveCtrRemote()
      ? 'every lazy variant (clip and stargz) pulls with `ctr-remote images rpull` (containerd\'s Go client, unpack with remote-snapshot labels — the CRI path); overlayfs with `ctr images pull`.'
      : 'clip pulls with `clip-snapshotter pull` (ctr-remote is not built).',
    'start profile variant: the ContentCache keeps only the start profiles the previous (defaults) node recorded — no layer objects, no cached indexes.',
    stargzNote,
    'registry bytes = sum of blob GET response sizes in the registry access log from pull start until the container exited (right after its first output); "of which layer blobs" counts the variant\'s own layer digests (the eStargz blobs for stargz).',
  );
  if (esgz) {
    const peerBytes = median(STARGZ, (r) => r.registryBytes);
    for (const v of COLD_CLIP.filter((x) => of(x).length > 0)) {
      const t = median(v, (r) => r.seconds);
      const bytes = median(v, (r) => r.registryBytes);
      const met = t <= peer && t <= 0.2 * base.median && bytes <= 2 * peerBytes;
      e.notes.push(`goal (issue 8), ${v}: ≤ 1.0× stargz, ≤ 0.2× overlayfs, registry bytes ≤ 2× stargz's — ${met ? 'met' : 'missed'}: ${(t / peer).toFixed(2)}× stargz, ${(t / base.median).toFixed(2)}× overlayfs, ${(bytes / peerBytes).toFixed(2)}× stargz's bytes (${formatBytes(bytes)} vs ${formatBytes(peerBytes)}).`);
    }
  }
  const warm = spread(of('clip ContentCache-warm node').map((r) => r.seconds)).median;
  const warmLayerBytes = Math.max(...of('clip ContentCache-warm node').map((r) => r.layerBytes ?? 0));
  const speedup = base.median / warm;
  e.notes.push(`goal (issue 5): ContentCache-warm node ≥ 5× faster than the overlayfs full pull with 0 registry layer bytes — ${speedup >= 5 && warmLayerBytes === 0 ? 'met' : 'missed'}: overlayfs time / warm-node time = ${speedup.toFixed(2)}×, ${formatBytes(warmLayerBytes)} of layer blobs at most in any warm run.`);
  e.raw = { runs, imageBytes: sizes, estargz: esgz ?? null };

  const verification = verificationEntry(of, sha256Throughput());

  const rss = newEntry('rss', 'Daemon memory after a cold start (RSS of clip-snapshotter serve; of stargzref for stargz)', ['node', 'RSS (MB)', 'FUSE layer mounts']);
  for (const v of measured.filter((x) => x !== 'overlayfs full pull')) {
    const mb = spread(of(v).map((r) => (r.rssBytes ?? NaN) / 1e6));
    rss.rows.push([v, formatSpread(mb, 1), spread(of(v).map((r) => r.fuseMounts ?? 0)).median]);
  }
  rss.notes.push('Measured right after the container printed, with the image\'s layers mounted; a many-layer (100+) RSS measurement is not done yet.');
  rss.raw = { runs: runs.filter((r) => r.rssBytes !== undefined).map((r) => ({ variant: r.variant, rssBytes: r.rssBytes, fuseMounts: r.fuseMounts })) };
  return { cold: e, rss, verification };
}

/**
 * What checking untrusted bytes costs a cold start (issue 12): the same nodes with and without a
 * cluster key (every ContentCache object signed, and checked by SHA-256 and HMAC), and the SHA-256
 * of every range-read span against the index, which cannot be turned off, priced at this machine's
 * hash speed over the bytes the cold node fetched.
 */
function verificationEntry(of: (v: Variant) => Run[], shaMBps: number): BenchEntry {
  const e = newEntry('verification', 'What verification costs a cold start: cluster key on vs off, and the span digest check',
    ['node', 'without key (s)', 'with key_file (s)', 'key on / off', 'span bytes checked', 'SHA-256 of them', 'share of the start', 'goal ≤ 5 %']);
  const med = (v: Variant): number => spread(of(v).map((r) => r.seconds)).median;
  for (const [plain, keyed] of [[RANGE, RANGE_KEYED], [WHOLE, WHOLE_KEYED], [WARM, WARM_KEYED]] as const) {
    if (of(plain).length === 0 || of(keyed).length === 0) continue;
    const off = med(plain);
    const on = med(keyed);
    const spanBytes = plain === RANGE ? spread(of(plain).map((r) => r.cachedBytes ?? 0)).median : 0;
    const hashS = spanBytes / 1e6 / shaMBps;
    const extra = Math.max(0, on / off - 1) + hashS / off;
    e.rows.push([plain, off.toFixed(2), on.toFixed(2), `${(on / off).toFixed(2)}×`, spanBytes ? formatBytes(spanBytes) : '—', spanBytes ? `${(hashS * 1000).toFixed(1)} ms` : '—',
      `${(extra * 100).toFixed(1)} %`, extra <= 0.05 ? 'met' : 'missed']);
  }
  e.notes.push(
    `SHA-256 here: ${shaMBps.toFixed(0)} MB/s (4 MiB pieces, one thread). Span bytes checked = the cold node's layer cache on disk after the run (the spans it fetched, each hashed once against the index's digest before its first read).`,
    '"share of the start" = (key on / key off − 1, floored at 0) + span hashing time / the start without a key. Medians of the cold-start runs, interleaved with the other variants.',
    'Reads of a layer already on disk hash nothing per read: the disk-cache file is hashed to its diffID once per process (at its first open), so the FUSE and extracted-read entries measure the verified path as it is.',
  );
  return e;
}
