/**
 * `make bench`: the benchmark matrix in one run, baselines alongside, written to bench-results/
 * (results.json, results.md, chart.svg). Usage: node build/integration/bench/bench.js [--quick]
 * [--only rpc,index,fuse-read,extracted-read,cold-start,verification,pull-latency,bulk-read,cc-range,memory,tracing,ml-image]
 * (`verification` is part of `cold-start`; alone it runs only the clip nodes it compares)
 * [--ml-variants overlayfs,stargz,soci,cold,warm,disk] [--ml-links shaped,loopback] [--ml-runs N] [--ml-logs DIR]
 * (the ML entry: only some variants or links while looking into one; DIR keeps each clip run's daemon and registry logs)
 * [--bulk-parts cold,cc] [--bulk-runs N] [--bulk-logs DIR]
 * (the bulk-read entry: only the cold-node links or only the ContentCache-warm node, N runs of the latter, its daemon logs kept)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildDebianImage } from '../images/debian-image.js';
import { withStack, type RedisServer, type Stack } from '../harness/stack.js';
import { REPO_ROOT } from '../harness/snapshotter.js';
import { buildImage, IMAGE_SPECS, pushImage, type PushedImage } from '../images/index.js';
import { buildMlImage } from '../images/ml-image.js';
import { coldStartEntry, verificationOnlyEntry } from './cold-start-entry.js';
import { ML_VARIANT_NAMES, mlImageEntry } from './ml-image-entry.js';
import { pullLatencyEntry } from './pull-latency-entry.js';
import { extractedReadEntry } from './extracted-read-entry.js';
import { contentCacheRangeEntry } from './content-cache-range-entry.js';
import { fuseReadEntry } from './fuse-read-entry.js';
import { indexEntry } from './index-entry.js';
import { memoryEntry } from './memory-entry.js';
import { bulkReadEntry } from './bulk-read-entry.js';
import { renderMarkdown, renderSvg } from './report.js';
import { rpcEntry } from './rpc-entry.js';
import { startShapedRegistry, type ShapedRegistry } from './shaped-link.js';
import { tracingOverheadEntry } from './tracing-overhead-entry.js';
import { newEntry, type BenchEntry, type BenchResults } from './types.js';

const OUT = join(REPO_ROOT, 'bench-results');
const t0 = performance.now();
const log = (msg: string): void => {
  process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
};

interface Plan {
  quick: boolean;
  only: Set<string> | undefined;
  /** The ML entry's `--ml-variants` / `--ml-links` / `--ml-logs`. */
  ml: MlPlan;
  /** The bulk-read entry's `--bulk-parts` / `--bulk-runs` / `--bulk-logs`. */
  bulk: { parts: Set<string> | undefined; runs: number | undefined; logDir: string | undefined };
}

interface MlPlan {
  variants: Set<string> | undefined;
  links: Set<string> | undefined;
  runs: number | undefined;
  logDir: string | undefined;
}

/** Run one entry; a failure becomes an entry saying so, and the rest still run. */
async function attempt(id: string, title: string, fn: () => Promise<BenchEntry | BenchEntry[]>): Promise<BenchEntry[]> {
  log(`▶ ${title}`);
  const started = performance.now();
  try {
    const out = await fn();
    const list = Array.isArray(out) ? out : [out];
    for (const e of list) e.duration_s = Math.round((performance.now() - started) / 100) / 10;
    log(`✓ ${title} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    return list;
  } catch (err) {
    const e = newEntry(id, title, []);
    e.status = 'error';
    e.error = err instanceof Error ? err.message.split('\n').slice(0, 6).join(' ') : String(err);
    log(`✗ ${title}: ${e.error}`);
    return [e];
  }
}

interface Shaped {
  registry: ShapedRegistry;
  redis: RedisServer;
  image: PushedImage;
  cmd: string[];
}

let shapedSetup: Promise<Shaped> | undefined;
let redisServer: Promise<RedisServer> | undefined;

/** The one Redis of the run (the stack keeps one Redis directory). */
function redis(stack: Stack): Promise<RedisServer> {
  redisServer ??= stack.redis();
  return redisServer;
}

/** The shaped registry with the cold-start image and one Redis, shared by the entries that need them. */
function shaped(stack: Stack, quick: boolean): Promise<Shaped> {
  shapedSetup ??= (async () => {
    const registry = await startShapedRegistry(stack, '100mbit');
    const cache = await redis(stack);
    const built = quick ? await buildImage(IMAGE_SPECS.busybox) : await buildDebianImage(log);
    log(`pushing ${built.name} to the shaped registry ${registry.host}`);
    const image = await pushImage(built, registry);
    return { registry, redis: cache, image, cmd: quick ? ['echo', '1'] : ['python3', '-c', 'print(1)'] };
  })();
  return shapedSetup;
}

async function coldStart(stack: Stack, quick: boolean): Promise<BenchEntry[]> {
  const s = await shaped(stack, quick);
  const { cold, rss, verification } = await coldStartEntry(stack, { ...s, runs: quick ? 3 : 5 }, log);
  return [cold, rss, verification];
}

async function verification(stack: Stack, quick: boolean): Promise<BenchEntry> {
  const s = await shaped(stack, quick);
  return verificationOnlyEntry(stack, { ...s, runs: quick ? 3 : 5 }, log);
}

async function ccRange(stack: Stack, quick: boolean): Promise<BenchEntry> {
  const cache = await redis(stack);
  return contentCacheRangeEntry(stack, cache.address, { blobMb: quick ? 32 : 128, samples: quick ? 200 : 1000 }, log);
}

async function tracing(stack: Stack, quick: boolean): Promise<BenchEntry[]> {
  const cold = await shaped(stack, quick);
  return tracingOverheadEntry(stack, { layerMb: quick ? 32 : 128, randomReads: quick ? 50_000 : 200_000, readRuns: quick ? 5 : 7, coldRuns: quick ? 5 : 7, cold }, log);
}

/**
 * The ML-sized image on a loopback registry and, serving the same storage, a registry behind the
 * shaped link: pushed once. Quick mode: a 128 MiB weights file and one run; full: 1 GiB, three runs.
 */
async function mlImage(stack: Stack, quick: boolean, ml: MlPlan): Promise<BenchEntry[]> {
  const weightsMib = quick ? 128 : 1024;
  const built = await buildMlImage(weightsMib, log);
  const loopback = await stack.registry('ml-registry');
  const wantLink = (name: string): boolean => ml.links === undefined || ml.links.has(name);
  const shapedReg = wantLink('shaped') ? await startShapedRegistry(stack, '100mbit', loopback.storageDir) : undefined;
  log(`pushing ${built.name} to the loopback registry ${loopback.host} (the shaped registry serves the same storage)`);
  const image = await pushImage(built, loopback, undefined, 1_800_000);
  const variants = ml.variants && new Set([...ml.variants].map((v) => {
    const variant = ML_VARIANT_NAMES[v];
    if (!variant) throw new Error(`--ml-variants: unknown variant ${v} (known: ${Object.keys(ML_VARIANT_NAMES).join(', ')})`);
    return variant;
  }));
  return mlImageEntry(stack, {
    image, weightsMib, redis: await redis(stack), runs: ml.runs ?? (quick ? 1 : 3),
    links: [
      ...(shapedReg ? [{ label: `shaped ${shapedReg.rate}`, host: shapedReg.host, logPath: shapedReg.logPath }] : []),
      ...(wantLink('loopback') ? [{ label: 'loopback', host: loopback.host, logPath: loopback.logPath }] : []),
    ],
    ...(variants ? { variants } : {}),
    ...(ml.logDir ? { logDir: ml.logDir } : {}),
  }, log);
}

async function run(stack: Stack, plan: Plan): Promise<BenchEntry[]> {
  const want = (id: string): boolean => plan.only === undefined || plan.only.has(id);
  const q = plan.quick;
  const entries: BenchEntry[] = [];
  if (want('rpc')) entries.push(...(await attempt('rpc', 'per-RPC latency and conformance wall time', () => rpcEntry(stack, { n: q ? 200 : 1000, rounds: q ? 3 : 5, conformance: true }))));
  if (want('index')) entries.push(...(await attempt('index', 'clip index build, size, lookups', () => indexEntry({ sourceDir: q ? '/usr/lib/python3' : '/usr/lib', rounds: q ? 3 : 5 }))));
  if (want('fuse-read')) entries.push(...(await attempt('fuse-read', 'FUSE read throughput vs native', () => fuseReadEntry(stack, { fileMb: q ? 64 : 256, runs: q ? 3 : 5, randomReads: q ? 4096 : 16384 }))));
  if (want('extracted-read')) entries.push(...(await attempt('extracted-read', 'reads in a container started after its layers completed vs native', () => extractedReadEntry(stack, { fileMb: q ? 128 : 256, runs: q ? 5 : 9, randomReads: q ? 32768 : 65536, warmPasses: q ? 8 : 16 }, log))));
  if (want('cold-start')) entries.push(...(await attempt('cold-start', 'cold start over a shaped link', () => coldStart(stack, q))));
  else if (want('verification')) entries.push(...(await attempt('verification', 'what verification costs a cold start (clip nodes only)', () => verification(stack, q))));
  if (want('pull-latency')) entries.push(...(await attempt('pull-latency', 'clip-snapshotter pull latency per phase, cold node', async () => pullLatencyEntry(stack, { redis: await redis(stack), runs: q ? 3 : 7 }, log))));
  if (want('bulk-read')) entries.push(...(await attempt('bulk-read', 'bulk read of a large file on a cold node vs one GET', async () => bulkReadEntry(stack, {
    fileMib: q ? 128 : 512, runs: q ? 1 : 3, redis: await redis(stack),
    ...(plan.bulk.parts ? { parts: plan.bulk.parts } : {}), ...(plan.bulk.runs ? { ccRuns: plan.bulk.runs } : {}), ...(plan.bulk.logDir ? { logDir: plan.bulk.logDir } : {}),
  }, log))));
  if (want('cc-range')) entries.push(...(await attempt('cc-range', 'ContentCache range reads vs raw GETRANGE', () => ccRange(stack, q))));
  if (want('memory')) entries.push(...(await attempt('memory', 'daemon memory with many lazy layers', () => memoryEntry(stack, { layers: q ? 50 : 200 }, log))));
  if (want('ml-image')) entries.push(...(await attempt('ml-image', 'ML-sized image: import and weights read, every peer, shaped and loopback', () => mlImage(stack, q, plan.ml))));
  if (want('tracing')) entries.push(...(await attempt('tracing', 'tracing overhead: cached reads and lazy cold start', () => tracing(stack, q))));
  return entries;
}

function write(results: BenchResults): void {
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(OUT, 'results.md'), renderMarkdown(results));
  writeFileSync(join(OUT, 'chart.svg'), renderSvg(results.entries.flatMap((e) => e.charts)));
}

const { values } = parseArgs({
  options: { quick: { type: 'boolean' }, only: { type: 'string' }, 'ml-variants': { type: 'string' }, 'ml-links': { type: 'string' }, 'ml-runs': { type: 'string' }, 'ml-logs': { type: 'string' }, 'bulk-parts': { type: 'string' }, 'bulk-runs': { type: 'string' }, 'bulk-logs': { type: 'string' } },
  strict: true,
});
const list = (v: string | undefined): Set<string> | undefined => (v ? new Set(v.split(',')) : undefined);
const plan: Plan = {
  quick: values.quick === true || process.env.BENCH_QUICK === '1',
  only: list(values.only),
  ml: { variants: list(values['ml-variants']), links: list(values['ml-links']), runs: values['ml-runs'] ? Number(values['ml-runs']) : undefined, logDir: values['ml-logs'] },
  bulk: { parts: list(values['bulk-parts']), runs: values['bulk-runs'] ? Number(values['bulk-runs']) : undefined, logDir: values['bulk-logs'] },
};
const started = new Date().toISOString();
let failed = 0;
const code = await withStack('clip-bench-', async (stack) => {
  const entries = await run(stack, plan);
  failed = entries.filter((e) => e.status === 'error').length;
  const results: BenchResults = { started, finished: new Date().toISOString(), quick: plan.quick, host: { kernel: release(), cpus: cpus().length, node: process.version }, entries };
  write(results);
  process.stdout.write(`\n${renderMarkdown(results)}\nwritten: ${OUT}/results.json, results.md, chart.svg\n`);
  return failed > 0 ? 1 : 0;
});
process.exit(code);
