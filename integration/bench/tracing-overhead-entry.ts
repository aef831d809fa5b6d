/**
 * Tracing overhead (issue 6, item 6): cached-read throughput of LayerStore (disk hits) and the lazy
 * cold start over the shaped link, with tracing off, on with the default configuration, and on with
 * everything spanned, exporting to a local OTLP/HTTP receiver. Goal: ≤ 5% at default sampling.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisServer, Stack } from '../harness/stack.js';
import { daemonConfigToml } from '../harness/daemon-config.js';
import { clipPull, runArgs, timeFirstOutput } from '../harness/stack-node.js';
import { runCommand } from '../harness/run-command.js';
import type { PushedImage } from '../images/index.js';
import { startOtlpReceiver } from '../harness/otlp-receiver.js';
import { runNodeScript } from './proc-util.js';
import type { ShapedRegistry } from './shaped-link.js';
import { formatSpread, spread, type Spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

const WORKER = 'build/integration/bench/traced-read-worker.js';

export interface TracingOverheadOptions {
  layerMb: number;
  randomReads: number;
  readRuns: number;
  coldRuns: number;
  /** The cold-start setup (shaped registry, image); omitted → only the cached-read part runs. */
  cold?: { registry: ShapedRegistry; redis: RedisServer; image: PushedImage; cmd: string[] };
}

interface ReadResult {
  randomUsPerRead: number;
  randomMBps: number;
  seqMBps: number;
}

type ReadMode = 'off' | 'default' | 'all';
const READ_MODES: Array<[ReadMode, string]> = [
  ['off', 'tracing off'],
  ['default', 'on, default config (sample_ratio 1.0; disk hits spanned once per layer per 10 s)'],
  ['all', 'on, ratio 1.0 and every disk hit spanned (diskSpanIntervalMs 0)'],
];
const COLD_MODES: Array<[number | undefined, string]> = [
  [undefined, 'tracing off'],
  [0.1, 'on, sample_ratio 0.1'],
  [1, 'on, sample_ratio 1.0 (the default config)'],
];

const overhead = (base: number, v: number, higherIsBetter: boolean): string => {
  const pct = higherIsBetter ? (base / v - 1) * 100 : (v / base - 1) * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(1)}%`;
};

async function readRun(mode: ReadMode, endpoint: string, o: TracingOverheadOptions): Promise<ReadResult> {
  const r = await runNodeScript(WORKER, [mode, endpoint, String(o.layerMb), String(o.randomReads)], { timeoutMs: 600_000 });
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '') as ReadResult;
}

async function cachedReads(o: TracingOverheadOptions, endpoint: string, log: (s: string) => void): Promise<BenchEntry> {
  const e = newEntry('tracing-reads', 'Tracing overhead on cached reads (LayerStore disk hits)',
    ['tracing', 'random 4 KiB (µs/read)', 'random 4 KiB overhead', 'sequential 128 KiB (MB/s)', 'sequential overhead']);
  const results = new Map<ReadMode, ReadResult[]>(READ_MODES.map(([m]) => [m, []]));
  for (let i = 0; i < o.readRuns; i++) {
    for (const [mode] of READ_MODES) {
      log(`tracing-reads run ${i + 1}/${o.readRuns}: ${mode}`);
      results.get(mode)!.push(await readRun(mode, endpoint, o));
    }
  }
  const med = (m: ReadMode, f: (r: ReadResult) => number): Spread => spread(results.get(m)!.map(f));
  const baseRand = med('off', (r) => r.randomUsPerRead).median;
  const baseSeq = med('off', (r) => r.seqMBps).median;
  for (const [mode, label] of READ_MODES) {
    const rand = med(mode, (r) => r.randomUsPerRead);
    const seq = med(mode, (r) => r.seqMBps);
    e.rows.push([label, formatSpread(rand, 2), mode === 'off' ? '—' : overhead(baseRand, rand.median, false), formatSpread(seq, 0), mode === 'off' ? '—' : overhead(baseSeq, seq.median, true)]);
  }
  e.charts.push({
    title: 'Cached random 4 KiB read (µs/read) by tracing setting', lowerIsBetter: true,
    bars: READ_MODES.map(([m, label]) => ({ label: label.split(' (')[0]!, value: med(m, (r) => r.randomUsPerRead).median, unit: 'µs', baseline: m === 'off' })),
  });
  e.notes.push(
    `${o.layerMb} MiB layer already in LayerStore's disk cache (page cache warm), ${o.randomReads} random 4 KiB reads (5 rounds, best kept) then 3 sequential 128 KiB passes (best kept), one read in flight; ${o.readRuns} runs per setting, interleaved, each in a fresh process (the tracer provider is process-global). Spans exported over OTLP/HTTP JSON to a local receiver; metrics endpoint off.`,
    'The config default sample_ratio is 1.0, so "default sampling" is ratio 1.0 with the disk-hit rule of telemetry/README.md; the third row shows what that rule saves.',
  );
  e.raw = Object.fromEntries(results);
  return e;
}

/** A clip node whose daemon traces at `ratio` (undefined: tracing off). */
async function coldOnce(stack: Stack, c: NonNullable<TracingOverheadOptions['cold']>, name: string, ratio: number | undefined, endpoint: string): Promise<number> {
  const dir = join(stack.root, name);
  mkdirSync(dir, { recursive: true });
  const containerdAddress = join(stack.root, `${name}-containerd`, 'containerd.sock');
  const configPath = join(dir, 'clip-config.toml');
  const toml = daemonConfigToml({
    containerdAddress,
    redisAddresses: [c.redis.address],
    ...(ratio === undefined ? {} : { tracingEndpoint: endpoint, sampleRatio: ratio }),
  });
  writeFileSync(configPath, toml);
  const snapshotter = await stack.snapshotter(`${name}-clip`, ['--config', configPath]);
  const containerd = await stack.containerd(`${name}-containerd`, { clip: snapshotter.address }, [c.registry.host]);
  await runCommand('redis-cli', ['-p', String(c.redis.port), 'flushall'], { allowFailure: true });
  const t0 = performance.now();
  await clipPull({ name, containerd, snapshotter, configPath }, c.image.ref, { requireBundle: true });
  const run = await timeFirstOutput(containerd, runArgs(containerd, 'clip', c.image.ref, name, c.cmd));
  const seconds = (performance.now() - t0 - (run.totalMs - run.firstOutputMs)) / 1000;
  await containerd.stop();
  await snapshotter.stop();
  return seconds;
}

async function coldStarts(stack: Stack, o: TracingOverheadOptions, endpoint: string, spans: () => number, log: (s: string) => void): Promise<BenchEntry> {
  const c = o.cold!;
  const e = newEntry('tracing-cold-start', `Tracing overhead on the lazy cold start (${c.registry.rate} shaped link, \`${c.cmd.join(' ')}\`)`,
    ['tracing', 'pull → first output (s)', 'overhead', 'spans exported per start']);
  const secs = new Map<string, number[]>(COLD_MODES.map(([, l]) => [l, []]));
  const spanCounts = new Map<string, number[]>(COLD_MODES.map(([, l]) => [l, []]));
  for (let i = 0; i < o.coldRuns; i++) {
    for (const [ratio, label] of COLD_MODES) {
      log(`tracing-cold-start run ${i + 1}/${o.coldRuns}: ${label}`);
      const before = spans();
      secs.get(label)!.push(await coldOnce(stack, c, `tr-${i}-${ratio ?? 'off'}`.replace('.', '_'), ratio, endpoint));
      spanCounts.get(label)!.push(spans() - before); // the daemon flushed its batch on stop
    }
  }
  const base = spread(secs.get(COLD_MODES[0]![1])!).median;
  for (const [ratio, label] of COLD_MODES) {
    const s = spread(secs.get(label)!);
    e.rows.push([label, formatSpread(s, 2), ratio === undefined ? '—' : overhead(base, s.median, false), spread(spanCounts.get(label)!).median]);
  }
  e.notes.push(
    `Every run: fresh containerd + clip daemon, Redis flushed (a cold node: the layers come from the registry), ${o.coldRuns} runs per setting, interleaved. Spans exported over OTLP/HTTP JSON to a receiver in the bench process.`,
    'Differences smaller than the run-to-run spread (min–max) are noise, not overhead.',
  );
  e.raw = { seconds: Object.fromEntries(secs), spans: Object.fromEntries(spanCounts) };
  return e;
}

/** Both tracing-overhead tables. */
export async function tracingOverheadEntry(stack: Stack, o: TracingOverheadOptions, log: (s: string) => void): Promise<BenchEntry[]> {
  const receiver = await startOtlpReceiver();
  stack.add('otlp receiver', () => receiver.stop());
  const out = [await cachedReads(o, receiver.url, log)];
  if (o.cold) out.push(await coldStarts(stack, o, receiver.url, () => receiver.spans().length, log));
  return out;
}
