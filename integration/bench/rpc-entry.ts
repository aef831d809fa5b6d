/** (a) Per-RPC latency and conformance-suite wall time: clip vs containerd's overlayfs, same run. */
import { join } from 'node:path';
import type { Stack } from '../harness/stack.js';
import { REPO_ROOT } from '../harness/snapshotter.js';
import { runCommand } from '../harness/run-command.js';
import { GO_BIN, startOverlayRef } from './proc-util.js';
import { round, spread } from './stats.js';
import { newEntry, type BenchEntry } from './types.js';

const RPCS = ['Prepare', 'Commit', 'Mounts', 'Stat', 'List'] as const;

type RpcStats = Record<string, { p50_us: number; p99_us: number; n: number }>;

async function rpcbench(address: string, n: number): Promise<RpcStats> {
  const res = await runCommand(join(GO_BIN, 'rpcbench'), ['--address', address, '--n', String(n)], { timeoutMs: 600_000 });
  return JSON.parse(res.stdout) as RpcStats;
}

/** Wall time of run-conformance.sh with `cmd` as the daemon (undefined = clip). */
async function conformance(cmd: string | undefined): Promise<{ seconds: number; pass: number; fail: number; skip: number }> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  if (cmd) env.CLIP_SNAPSHOTTER_CMD = cmd;
  const t0 = performance.now();
  const r = await runCommand('bash', [join(REPO_ROOT, 'integration/scripts/run-conformance.sh')], { env, timeoutMs: 1_500_000, allowFailure: true });
  const count = (re: RegExp): number => (r.stdout.match(re) ?? []).length;
  return { seconds: round((performance.now() - t0) / 1000, 1), pass: count(/^\s+--- PASS/gm), fail: count(/^\s*--- FAIL/gm), skip: count(/^\s+--- SKIP/gm) };
}

/** Runs rpcbench `rounds` times against each daemon, alternating, and the conformance suite once each. */
export async function rpcEntry(stack: Stack, opts: { n: number; rounds: number; conformance: boolean }): Promise<BenchEntry> {
  const e = newEntry('rpc', 'Per-RPC latency (µs) and conformance wall time: clip vs containerd overlayfs over the same gRPC proxy protocol',
    ['RPC', 'clip p50', 'overlayfs p50', 'p50 ratio', 'clip p99', 'overlayfs p99', 'p99 ratio']);
  const clip = await stack.snapshotter('rpc-clip', ['--log-level', 'warn']);
  const ref = await startOverlayRef(stack, 'rpc-overlayref');
  const runs: { clip: RpcStats[]; overlay: RpcStats[] } = { clip: [], overlay: [] };
  for (let i = 0; i < opts.rounds; i++) {
    runs.clip.push(await rpcbench(clip.address, opts.n));
    runs.overlay.push(await rpcbench(ref.address, opts.n));
  }
  const med = (rs: RpcStats[], rpc: string, k: 'p50_us' | 'p99_us'): number => spread(rs.map((r) => r[rpc]?.[k] ?? NaN)).median;
  const chartBars = [];
  for (const rpc of RPCS) {
    const [c50, o50, c99, o99] = [med(runs.clip, rpc, 'p50_us'), med(runs.overlay, rpc, 'p50_us'), med(runs.clip, rpc, 'p99_us'), med(runs.overlay, rpc, 'p99_us')];
    e.rows.push([rpc, round(c50, 1), round(o50, 1), `${round(c50 / o50, 2)}×`, round(c99, 1), round(o99, 1), `${round(c99 / o99, 2)}×`]);
    chartBars.push({ label: `${rpc} clip`, value: c50, unit: 'µs' }, { label: `${rpc} overlayfs`, value: o50, unit: 'µs', baseline: true });
  }
  e.charts.push({ title: 'RPC latency p50 (µs)', lowerIsBetter: true, bars: chartBars });
  e.notes.push(`rpcbench: ${opts.n} layers per round (Prepare, Mounts, Commit, Stat, View, List, Remove each), ${opts.rounds} round(s) per daemon alternating; values are medians over rounds of each round's p50/p99. Goal: p50 within 2× of overlayfs.`);
  e.raw.rpcbench = runs;
  if (opts.conformance) {
    const c = await conformance(undefined);
    const o = await conformance(join(GO_BIN, 'overlayref'));
    e.rows.push(['conformance suite wall time (s)', c.seconds, o.seconds, `${round(c.seconds / o.seconds, 2)}×`, null, null, null]);
    e.notes.push(`conformance suite (containerd 1.6 snapshots/testsuite, fresh daemon per test): clip ${c.pass} passed / ${c.fail} failed / ${c.skip} skipped; overlayfs ${o.pass} / ${o.fail} / ${o.skip}.`);
    e.charts.push({ title: 'Conformance suite wall time (s)', lowerIsBetter: true, bars: [{ label: 'clip', value: c.seconds, unit: 's' }, { label: 'overlayfs', value: o.seconds, unit: 's', baseline: true }] });
    e.raw.conformance = { clip: c, overlayfs: o };
  }
  return e;
}
