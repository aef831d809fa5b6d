/**
 * `make demo`: a private stack on loopback (registry, Redis, Jaeger when `make deps` built it — else
 * an OTLP receiver —, two containerd "nodes" each with its own clip daemon), a realistic image built
 * and pushed, then pulled and run on node A and on node B, with a summary of time to first output
 * and registry bytes per node, `clip-snapshotter status` of each node, and the start traces in
 * Jaeger (its UI URL; the stack stays up until Enter when run in a terminal).
 * Usage: node build/integration/demo/demo.js [--quick]   (or DEMO_QUICK=1)
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { freePort } from '../harness/free-port.js';
import { countByName, startOtlpReceiver, type OtlpReceiver } from '../harness/otlp-receiver.js';
import { jaegerMissingReason, startJaeger, type Jaeger } from '../harness/jaeger.js';
import { writeFileSync } from 'node:fs';
import { waitUntil } from '../harness/wait.js';
import { createInterface } from 'node:readline/promises';
import { REPO_ROOT, runClipCli } from '../harness/snapshotter.js';
import { runCommand } from '../harness/run-command.js';
import { buildAndPushImages, pushImage, type PushedImage } from '../images/index.js';
import { buildDebianImage } from '../images/debian-image.js';
import { clipPull, runArgs, startNode, timeFirstOutput, type ClipNode, type DaemonSettings, type PullSummary } from '../harness/stack-node.js';
import { scrapeCounters } from './counters.js';
import { AccessLogCursor, formatBytes, type RegistryTraffic } from '../harness/registry-bytes.js';
import { withStack, type Stack } from '../harness/stack.js';
import { printTable } from './table.js';

const OUT_DIR = join(REPO_ROOT, '.work', 'demo');
const started = performance.now();
const step = (msg: string): void => {
  process.stdout.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
};

interface NodeResult {
  node: string;
  pull: PullSummary;
  firstOutputMs: number;
  output: string;
  traffic: RegistryTraffic;
}

interface Workload {
  image: PushedImage;
  cmd: string[];
}

async function prepareImage(stack: Stack, quick: boolean): Promise<{ registry: Awaited<ReturnType<Stack['registry']>>; work: Workload }> {
  step('starting a private docker-registry on loopback');
  const registry = await stack.registry();
  if (quick) {
    step('building the busybox image (--quick) and pushing it');
    const { busybox } = await buildAndPushImages(registry, ['busybox']);
    return { registry, work: { image: busybox, cmd: ['echo', 'hello from clip'] } };
  }
  const built = await buildDebianImage(step);
  step(`pushing ${built.name} (${built.layers.length} layers, ${formatBytes(built.layers.reduce((s, l) => s + l.uncompressedSize, 0))} uncompressed)`);
  const image = await pushImage(built, registry);
  return { registry, work: { image, cmd: ['python3', '-c', 'print("hello from clip")'] } };
}

/** `clip-snapshotter index REF`: publish the layer indexes as an OCI artifact, when this build has it. */
async function publishIndexes(ref: string): Promise<void> {
  step(`clip-snapshotter index ${ref} (publish the clip indexes next to the image)`);
  const r = await runClipCli(['index', ref, '--plain-http'], { allowFailure: true, timeoutMs: 900_000 });
  step(r.code === 0 ? `indexes published (${r.stdout.trim().slice(0, 160)})` : `indexes not published (${(r.stderr.trim().split('\n')[0] ?? '').slice(0, 160)}); the nodes build them from the layer stream`);
}

/** Start a node with Redis as ContentCache; if the daemon refuses that config, without it. */
async function startNodeWithFallback(stack: Stack, name: string, hosts: string[], s: DaemonSettings): Promise<{ node: ClipNode; redis: boolean }> {
  try {
    return { node: await startNode(stack, name, hosts, s), redis: s.redisAddresses.length > 0 };
  } catch (err) {
    if (s.redisAddresses.length === 0) throw err;
    step(`${name}: the daemon did not start with [content_cache] backend="redis" (${String(err).slice(0, 200)}); retrying with backend="none"`);
    return { node: await startNode(stack, name, hosts, { ...s, redisAddresses: [] }, `${name}-nocache`), redis: false };
  }
}

async function runOnNode(node: ClipNode, work: Workload, cursor: AccessLogCursor, id: string): Promise<NodeResult> {
  cursor.mark();
  const t0 = performance.now();
  step(`${node.name}: clip-snapshotter pull ${work.image.ref}`);
  const pull = await clipPull(node, work.image.ref);
  for (const l of pull.layers) step(`${node.name}:   layer ${l.index} ${l.digest.slice(7, 19)} → ${l.mode === 'full' ? 'full pull (lazy path not active)' : l.mode}`);
  step(`${node.name}: ctr run --snapshotter clip … ${work.cmd.join(' ')}`);
  const run = await timeFirstOutput(node.containerd, runArgs(node.containerd, 'clip', work.image.ref, id, work.cmd));
  const firstOutputMs = Math.round(performance.now() - t0 - (run.totalMs - run.firstOutputMs));
  step(`${node.name}: container said ${JSON.stringify(run.stdout.trim())}`);
  return { node: node.name, pull, firstOutputMs, output: run.stdout.trim(), traffic: cursor.since() };
}

function layersCell(p: PullSummary): string {
  const parts = [`${p.lazy} lazy`, `${p.full} full`];
  if (p.present > 0) parts.push(`${p.present} present`);
  return parts.join(' / ') + (p.lazy === 0 && p.full > 0 ? ' (lazy path not active)' : '');
}

/** Where the daemons' spans go: Jaeger when built, else the project's own OTLP receiver. */
type TraceSink = { kind: 'jaeger'; jaeger: Jaeger } | { kind: 'otlp'; otlp: OtlpReceiver };

/** `clip-snapshotter status IMAGE` on a node: how each of its layers was served. */
async function printStatus(node: ClipNode, ref: string): Promise<void> {
  const r = await runClipCli(['status', ref, '--config', node.configPath, '--address', node.snapshotter.address], { allowFailure: true, timeoutMs: 30_000 });
  process.stdout.write(`\n${node.name}: clip-snapshotter status ${ref}\n${(r.code === 0 ? r.stdout : r.stderr).replace(/^/gm, '  ')}`);
}

/** The start traces in Jaeger: one per container start and node, with links into the UI. */
async function printJaeger(j: Jaeger, nodes: ClipNode[]): Promise<void> {
  process.stdout.write(`\nJaeger UI: ${j.uiUrl}   (query API ${j.uiUrl}/api/traces?service=clip-node-a)\n`);
  // A start trace's root is exported once it closes (5 s idle) and the batch exporter flushes.
  const closed = async (n: ClipNode): Promise<boolean> =>
    (await j.findTraces(`clip-${n.name}`, undefined, 50).catch(() => [])).some((tr) => tr.spans.some((s) => s.operationName === 'clip.start'));
  await waitUntil('a closed start trace of every node in Jaeger', async () => (await Promise.all(nodes.map(closed))).every(Boolean), 60_000, 500)
    .catch((err: unknown) => process.stdout.write(`  ${String(err)}\n`));
  const all = [];
  for (const n of nodes) {
    const traces = await j.findTraces(`clip-${n.name}`, undefined, 50).catch(() => []);
    all.push(...traces);
    for (const tr of traces) {
      const root = tr.spans.find((s) => s.operationName === 'clip.start');
      if (!root) continue;
      const tag = (k: string): unknown => root.tags.find((x) => x.key === k)?.value;
      const sources = [...new Set(tr.spans.map((s) => s.tags.find((x) => x.key === 'clip.source')?.value).filter((v) => v !== undefined))].join(', ');
      process.stdout.write(`  ${n.name}: start trace ${j.uiUrl}/trace/${tr.traceID}  ${tr.spans.length} spans, sources: ${sources || 'none'}, first read after ${String(tag('clip.time_to_first_read_ms') ?? '?')} ms\n`);
    }
  }
  writeFileSync(join(OUT_DIR, 'traces.json'), JSON.stringify(all));
  process.stdout.write(`  (Jaeger built from Go modules has no UI assets; ${j.uiUrl} serves integration/docs/trace-view. All traces saved to ${join(OUT_DIR, 'traces.json')})\n`);
}

async function summarize(results: NodeResult[], nodes: ClipNode[], redis: boolean, sink: TraceSink, metricsAddrs: string[], image: PushedImage): Promise<void> {
  process.stdout.write('\n=== clip-snapshotter demo summary\n\n');
  const sum = (k: 'size' | 'uncompressedSize'): number => image.layers.reduce((s, l) => s + l[k], 0);
  process.stdout.write(`image ${image.ref}: ${image.layers.length} layer(s), ${formatBytes(sum('size'))} compressed, ${formatBytes(sum('uncompressedSize'))} uncompressed\n\n`);
  printTable(
    ['node', 'layers', 'pull', 'time to first output', 'registry blob bytes', 'blob GETs (range)', 'output'],
    results.map((r) => [r.node, layersCell(r.pull), `${(r.pull.duration_ms / 1000).toFixed(2)} s`, `${(r.firstOutputMs / 1000).toFixed(2)} s`,
      formatBytes(r.traffic.blobBytes), `${r.traffic.blobGets} (${r.traffic.rangeGets})`, r.output]),
  );
  const mentioned = nodes.some((n) => /redis|content.?cache/i.test(n.snapshotter.log()));
  process.stdout.write(redis
    ? `\nContentCache: Redis on loopback configured for both daemons ([content_cache] backend = "redis", one cluster key_file: every object signed and checked); ${mentioned ? 'the daemon logs mention it' : 'the daemon logs do not mention it yet (backend accepted, maybe not wired)'}\n`
    : '\nContentCache: none (backend = "none": the daemon did not accept the Redis backend)\n');
  for (const [i, addr] of metricsAddrs.entries()) {
    const lines = await scrapeCounters(addr, ['content_cache', 'contentcache', 'disk', 'registry', 'fallback']);
    const label = nodes[i]?.name ?? `node ${i}`;
    process.stdout.write(lines.length > 0 ? `${label} counters:\n  ${lines.slice(0, 12).join('\n  ')}\n` : `${label}: no Prometheus counters at http://${addr}/metrics (metrics not served by the daemon yet)\n`);
  }
  mkdirSync(OUT_DIR, { recursive: true });
  for (const n of nodes) await printStatus(n, image.ref);
  if (sink.kind === 'jaeger') {
    await printJaeger(sink.jaeger, nodes);
  } else {
    const otlp = sink.otlp;
    const traces = join(OUT_DIR, 'traces.jsonl');
    const spans = otlp.spans();
    const exports = otlp.accepted() + otlp.rejected();
    if (spans.length > 0) {
      const top = countByName(spans).slice(0, 8).map(([n, c]) => `${n}×${c}`).join(', ');
      process.stdout.write(`Traces: ${spans.length} spans in ${exports} OTLP exports (${top}), saved to ${traces}\n`);
    } else {
      process.stdout.write(`Traces: no spans arrived at the demo's OTLP receiver (${exports} exports, ${otlp.rejected()} refused)\n`);
    }
    process.stdout.write('        Jaeger is not built here (make jaeger); in production set [tracing] endpoint = "http://JAEGER:4318" and open Jaeger\'s UI.\n');
  }
  for (const n of nodes) {
    for (const [src, dst] of [[n.snapshotter.logPath, `${n.name}-clip.log`], [n.containerd.logPath, `${n.name}-containerd.log`]] as const) {
      if (existsSync(src)) copyFileSync(src, join(OUT_DIR, dst));
    }
  }
  process.stdout.write(`Logs of both nodes copied to ${OUT_DIR}/\n\n`);
}

/**
 * Node A started its container from a few range reads; in the background it now fetches the rest
 * of each layer (after 2 s without on-demand reads), checks it against the diffID and publishes it
 * to the ContentCache. Wait for that, so node B shows the cluster-wide cache, not the registry.
 */
async function awaitPublished(node: ClipNode, redisPort: number, layers: number): Promise<void> {
  step(`${node.name}: background completion — the rest of each layer arrives and is published to the ContentCache`);
  const started = Date.now();
  for (;;) {
    const res = await runCommand('redis-cli', ['-p', String(redisPort), '--scan', '--pattern', '*:manifest'], { allowFailure: true });
    const complete = res.stdout.split('\n').filter(Boolean).length;
    if (complete >= layers) break;
    if (Date.now() - started > 180_000) {
      step(`${node.name}: ${complete}/${layers} layers published after 180 s; going on`);
      return;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  step(`${node.name}:   all ${layers} layers complete and published (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

async function demo(stack: Stack, quick: boolean): Promise<number> {
  step(`private stack under ${stack.root}`);
  const { registry, work } = await prepareImage(stack, quick);
  await publishIndexes(work.image.ref);
  step('starting Redis (ContentCache) on loopback');
  const redisServer = await stack.redis();
  mkdirSync(OUT_DIR, { recursive: true });
  for (const f of readdirSync(OUT_DIR)) rmSync(join(OUT_DIR, f), { force: true });
  let sink: TraceSink;
  const noJaeger = jaegerMissingReason();
  if (noJaeger === undefined) {
    step('starting Jaeger all-in-one (OTLP in, query API and UI out) on loopback');
    const jaeger = await startJaeger({ dir: join(stack.root, 'jaeger'), uiAssets: join(REPO_ROOT, 'integration', 'docs', 'trace-view') });
    stack.add('jaeger', () => jaeger.stop());
    sink = { kind: 'jaeger', jaeger };
  } else {
    step(`Jaeger not available (${noJaeger}); traces go to the demo's OTLP receiver`);
    const otlp = await startOtlpReceiver({ dumpPath: join(OUT_DIR, 'traces.jsonl') });
    stack.add('otlp receiver', () => otlp.stop());
    sink = { kind: 'otlp', otlp };
  }
  const tracingEndpoint = sink.kind === 'jaeger' ? sink.jaeger.otlpHttpUrl : sink.otlp.endpoint;
  const nodes: ClipNode[] = [];
  const metricsAddrs: string[] = [];
  let redis = true;
  for (const name of ['node-a', 'node-b']) {
    const metricsAddress = `127.0.0.1:${await freePort()}`;
    step(`${name}: starting clip-snapshotter and containerd`);
    const started = await startNodeWithFallback(stack, name, [registry.host], { redisAddresses: redis ? [redisServer.address] : [], tracingEndpoint, serviceName: `clip-${name}`, metricsAddress });
    redis &&= started.redis;
    nodes.push(started.node);
    metricsAddrs.push(metricsAddress);
  }
  const cursor = new AccessLogCursor(registry.logPath);
  const results: NodeResult[] = [];
  for (const [i, node] of nodes.entries()) {
    results.push(await runOnNode(node, work, cursor, `demo-${i === 0 ? 'a' : 'b'}`));
    if (i === 0 && redis) await awaitPublished(node, redisServer.port, work.image.layers.length);
  }
  if (sink.kind === 'otlp') {
    // Give batching span exporters a moment to flush before the summary.
    await new Promise((r) => setTimeout(r, 1500));
  }
  await summarize(results, nodes, redis, sink, metricsAddrs, work.image);
  if (sink.kind === 'jaeger' && process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    await rl.question(`\nThe stack stays up for you to browse ${sink.jaeger.uiUrl} — press Enter to tear it down. `);
    rl.close();
  }
  return results.every((r) => r.output.includes('hello from clip')) ? 0 : 1;
}

const { values } = parseArgs({ options: { quick: { type: 'boolean' } }, strict: true });
const quick = values.quick === true || process.env.DEMO_QUICK === '1';
const code = await withStack('clip-demo-', (stack) => demo(stack, quick));
process.exit(code);
