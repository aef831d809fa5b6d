/**
 * Pull latency (issue 15, deliverable 4): the time `clip-snapshotter pull` and the daemon's Prepare
 * path spend on a cold node before containerd can create the container, per phase. An image of
 * several small layers (so fixed per-layer costs show, not transfer time) with published clip
 * indexes, on a loopback registry; every run on a fresh containerd + daemon with an empty
 * ContentCache. The process's own start-up is split into a bare Node start (`clip-snapshotter
 * version`) and the rest (module loading, config, connections). `PULL_LATENCY_LOGS=DIR` keeps each
 * run's daemon log there (`<run>-daemon.log`), to see where a layer's time went.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Stack, RedisServer } from '../harness/stack.js';
import { clipPull, startNode, type PullSummary } from '../harness/stack-node.js';
import { runClipCli } from '../harness/snapshotter.js';
import { runCommand } from '../harness/run-command.js';
import { waitUntil } from '../harness/wait.js';
import { addBusyboxRootfs } from '../images/busybox-rootfs.js';
import { buildImage, pushImage, type ImageSpec, type PushedImage } from '../images/index.js';
import type { StagingTree } from '../images/staging-tree.js';
import { publishIndexes } from './cold-start-entry.js';
import { spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';
import { pseudoRandomBytes } from '../harness/pseudo-random.js';

/** Layers on top of busybox: each a few hundred small files and one 1 MiB file of its own. */
const EXTRA_LAYERS = 7;


/** The bench image: busybox + EXTRA_LAYERS layers of files unique to each. */
export const PULL_LAYERS_SPEC: ImageSpec = {
  name: 'pull-layers',
  layers: [
    addBusyboxRootfs,
    ...Array.from({ length: EXTRA_LAYERS }, (_, i) => async (t: StagingTree): Promise<void> => {
      const layer = i + 1;
      for (let f = 0; f < 300; f++) t.file(`opt/l${layer}/f${f}.txt`, `layer ${layer} file ${f}\n`.repeat(20));
      t.file(`opt/l${layer}/blob.bin`, pseudoRandomBytes(`pull-layers ${layer}`, 1 << 20));
    }),
  ],
  config: { cmd: ['/bin/sh'] },
};

export interface PullLatencyOptions {
  redis: RedisServer;
  runs: number;
}

interface Run {
  wallMs: number;
  summary: PullSummary;
  /** Daemon side, summed over the layers: index resolution and FUSE mount (its "layer mounted" records). */
  indexResolveMs: number;
  fuseMountMs: number;
  /** The daemon's Prepare handlers, summed (its "rpc served"/"rpc failed" records' duration_ms). */
  daemonPrepareMs: number;
}

/** Sum `resolve_ms` / `mount_ms` of the daemon's "layer mounted" records in `text`. */
export function daemonMountTimes(text: string): { indexResolve: number; fuseMount: number; layers: number } {
  let indexResolve = 0;
  let fuseMount = 0;
  let layers = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('"layer mounted"')) continue;
    try {
      const rec = JSON.parse(line) as { resolve_ms?: unknown; mount_ms?: unknown };
      if (typeof rec.resolve_ms === 'number') indexResolve += rec.resolve_ms;
      if (typeof rec.mount_ms === 'number') fuseMount += rec.mount_ms;
      layers++;
    } catch {
      // not a JSON record
    }
  }
  return { indexResolve, fuseMount, layers };
}

/** Sum the duration_ms of the daemon's records of `method` RPCs ("rpc served" / "rpc failed") in `text`. */
export function daemonRpcMs(text: string, method: string): { ms: number; calls: number } {
  let ms = 0;
  let calls = 0;
  for (const line of text.split('\n')) {
    if (!line.includes('"rpc served"') && !line.includes('"rpc failed"')) continue;
    try {
      const rec = JSON.parse(line) as { method?: unknown; duration_ms?: unknown };
      if (rec.method !== method || typeof rec.duration_ms !== 'number') continue;
      ms += rec.duration_ms;
      calls++;
    } catch {
      // not a JSON record
    }
  }
  return { ms, calls };
}

/**
 * Split a pull's duration by who it waited on, along its critical path, counting every ms in which
 * the command used CPU as its own (so the waits are lower bounds and the own time an upper bound):
 * the registry (the config fetch; the manifest beside the lease), containerd (the lease, each
 * Prepare's wall time minus the snapshotter's handler and the command's CPU within it, the content
 * wait and the image record) and the rest, the project's own: the snapshotter's Prepare handlers and
 * the command's work.
 */
export function splitPull(s: PullSummary, daemonPrepareMs: number): { registry: number; containerd: number; startWait: number; own: number } {
  const p = s.phases_ms;
  if (!p?.prepare_rpcs || !p.prepare_rpcs_cpu || !p.cpu) throw new Error('pull-latency: the pull summary has no per-RPC timings (a stale pull bundle? run make build)');
  const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  const wait = (wall: number, cpu: number): number => Math.max(0, wall - cpu);
  // Lease and manifest run side by side from the start: their window is the longer of the two.
  const startWait = wait(Math.max(p.lease, p.resolve), p.cpu.start);
  const registry = wait(p.config, p.cpu.config);
  const containerd = Math.max(0, sum(p.prepare_rpcs) - daemonPrepareMs - sum(p.prepare_rpcs_cpu)) + wait(p.content, p.cpu.content) + wait(p.image, p.cpu.image);
  return { registry, containerd, startWait, own: s.duration_ms - startWait - registry - containerd };
}

async function pullOnce(stack: Stack, o: PullLatencyOptions, image: PushedImage, name: string): Promise<Run> {
  await runCommand('redis-cli', ['-p', String(o.redis.port), 'flushall'], { allowFailure: true });
  // The default deployment: the daemon and its FUSE server (separate processes).
  const node = await startNode(stack, name, [image.ref.slice(0, image.ref.indexOf('/'))], { redisAddresses: [o.redis.address], tracingEndpoint: '', metricsAddress: '', fuseServerMode: 'separate' });
  try {
    // A cold node is one with empty caches, not one whose daemon started a moment ago: the pull
    // starts once the FUSE server the daemon starts at start is up.
    await waitUntil('the FUSE server up', async () => node.snapshotter.log().includes('"FUSE server up ahead of the first mount"'), 60_000);
    const logStart = node.snapshotter.log().length;
    const t0 = performance.now();
    const summary = await clipPull(node, image.ref, { requireBundle: true });
    const wallMs = performance.now() - t0;
    if (summary.lazy !== image.layers.length) throw new Error(`pull-latency: ${summary.lazy} of ${image.layers.length} layers lazy (${JSON.stringify(summary)})`);
    const text = node.snapshotter.log().slice(logStart);
    const d = daemonMountTimes(text);
    const prep = daemonRpcMs(text, 'Prepare');
    if (prep.calls !== (summary.phases_ms?.prepare_rpcs?.length ?? -1)) {
      throw new Error(`pull-latency: the daemon logged ${prep.calls} Prepare RPCs, the command sent ${summary.phases_ms?.prepare_rpcs?.length ?? 'an unknown number of'}`);
    }
    if (process.env.PULL_LATENCY_LOGS) writeFileSync(join(process.env.PULL_LATENCY_LOGS, `${name}-daemon.log`), node.snapshotter.log());
    return { wallMs, summary, indexResolveMs: d.indexResolve, fuseMountMs: d.fuseMount, daemonPrepareMs: prep.ms };
  } finally {
    await node.containerd.stop();
    await node.snapshotter.stop();
  }
}

/** Median wall time of `clip-snapshotter version` (a bare Node start of the CLI), ms. */
async function bareStartMs(n: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await runClipCli(['version']);
    times.push(performance.now() - t0);
  }
  return spread(times).median;
}

/** The entry: per-phase medians of `o.runs` cold pulls. */
export async function pullLatencyEntry(stack: Stack, o: PullLatencyOptions, log: (s: string) => void): Promise<BenchEntry> {
  const built = await buildImage(PULL_LAYERS_SPEC);
  const registry = await stack.registry('pull-latency-registry');
  const image = await pushImage(built, registry);
  log(`publishing clip indexes for ${image.ref}`);
  const indexNote = await publishIndexes(image.ref);
  const runs: Run[] = [];
  for (let i = 0; i < o.runs; i++) {
    log(`pull latency run ${i + 1}/${o.runs}`);
    runs.push(await pullOnce(stack, o, image, `pl-${i}`));
  }
  const bare = await bareStartMs(o.runs);
  const m = (f: (r: Run) => number): number => spread(runs.map(f)).median;
  const ph = (k: 'lease' | 'resolve' | 'config' | 'content' | 'image'): number => m((r) => r.summary.phases_ms?.[k] ?? NaN);
  const layersMs = m((r) => (r.summary.phases_ms?.layers ?? []).reduce((a, b) => a + b, 0));
  const own = m((r) => r.summary.duration_ms);
  const wall = m((r) => r.wallMs);
  const e = newEntry('pull-latency', `\`clip-snapshotter pull\` on a cold node (daemon + FUSE server, the default): ${image.layers.length} small layers, indexes published, loopback registry (ms, medians of ${o.runs})`,
    ['phase', 'ms']);
  const row = (label: string, v: number): void => void e.rows.push([label, Number.isFinite(v) ? Math.round(v) : null]);
  row('command wall time', wall);
  row('  Node start (bare `clip-snapshotter version`)', bare);
  row('  module loading, config, clients (wall − own − bare Node start)', wall - own - bare);
  row('  pull\'s own duration', own);
  row('    lease', ph('lease'));
  row('    manifest', ph('resolve'));
  row('    config', ph('config'));
  row('    content writes', ph('content'));
  row(`    ${image.layers.length} layers: Stat + Prepare (+ Commit if not lazy)`, layersMs);
  row('      of which daemon index resolution (summed over layers)', m((r) => r.indexResolveMs));
  row('      of which daemon FUSE mounts (summed over layers)', m((r) => r.fuseMountMs));
  row('    gc label + image record', ph('image'));
  row('  the pull\'s duration by who it waited on (critical path):', NaN);
  const split = (f: (x: ReturnType<typeof splitPull>) => number): number => m((r) => f(splitPull(r.summary, r.daemonPrepareMs)));
  row('    registry (manifest) and containerd (lease), side by side, minus the command\'s CPU', split((x) => x.startWait));
  row('    registry: config fetch minus the command\'s CPU', split((x) => x.registry));
  row('    containerd: Prepare RPCs minus the snapshotter\'s handlers and the command\'s CPU; content wait; image record', split((x) => x.containerd));
  row('    **the project\'s own** (the rest: snapshotter Prepare handlers + the command\'s work)', split((x) => x.own));
  row('      of which the snapshotter\'s Prepare handlers (summed)', m((r) => r.daemonPrepareMs));
  row('  the command\'s CPU during the pull (overlaps the waits)', m((r) => r.summary.cpu_ms ?? NaN));
  e.notes.push(
    `image: busybox + ${EXTRA_LAYERS} layers of 300 small files and a 1 MiB file each (integration/bench/pull-latency-entry.ts); ${indexNote}.`,
    'Phases from `phases_ms` of the command\'s JSON summary; index resolution and FUSE mounts from the daemon\'s "layer mounted" records (resolve_ms, mount_ms). Index resolutions that run ahead of their layer\'s Prepare overlap other phases, so the sums can exceed the layers\' wall time or be near zero.',
    'Issue 15 goal (deliverable 4): ≤ 100 ms of the project\'s own time per image before containerd can create the container.',
    '"By who it waited on": each Prepare RPC\'s wall time as the command saw it (`phases_ms.prepare_rpcs`) minus the daemon\'s handler time for it (`duration_ms` of its "rpc served"/"rpc failed" debug records) and minus the command\'s CPU time within it (`prepare_rpcs_cpu`) is containerd\'s part: its metadata transactions and the gRPC hops. Every other window (lease beside manifest, config, content, image record) counts as a wait only where the command used no CPU (`phases_ms.cpu`). So the waits are lower bounds and "the project\'s own", what remains of the pull\'s duration, an upper bound.',
  );
  e.charts.push({ title: '`clip-snapshotter pull`, cold node (ms)', lowerIsBetter: true, bars: [
    { label: 'command wall', value: Math.round(wall), unit: 'ms' },
    { label: 'own duration', value: Math.round(own), unit: 'ms' },
    { label: 'layers', value: Math.round(layersMs), unit: 'ms' },
  ] });
  e.raw = { runs: runs.map((r) => ({ wallMs: r.wallMs, durationMs: r.summary.duration_ms, cpuMs: r.summary.cpu_ms, phases: r.summary.phases_ms, indexResolveMs: r.indexResolveMs, fuseMountMs: r.fuseMountMs, daemonPrepareMs: r.daemonPrepareMs, split: splitPull(r.summary, r.daemonPrepareMs) })), bareNodeStartMs: bare };
  return e;
}
