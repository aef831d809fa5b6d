/**
 * `make docs-pictures`: the README's picture of a real trace. A private stack (registry, Jaeger
 * built from Go modules, one containerd + clip daemon exporting OTLP to Jaeger), a cold container
 * start of the 3-layer test image, the start trace found through Jaeger's query API by
 * clip.source=registry, then headless Chromium screenshots it as served by Jaeger's query service
 * (integration/docs/trace-view, see its header) into docs/jaeger-trace.png.
 * Usage: node build/integration/docs/pictures.js [--out FILE]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from '../harness/free-port.js';
import { startJaeger, tagOf, type Jaeger, type JaegerTrace } from '../harness/jaeger.js';
import { runCommand } from '../harness/run-command.js';
import { REPO_ROOT, SNAPSHOTTER_BIN } from '../harness/snapshotter.js';
import { withStack } from '../harness/stack.js';
import { clipPull, runArgs, startNode } from '../harness/stack-node.js';
import { buildAndPushImages } from '../images/index.js';

const { values } = parseArgs({ options: { out: { type: 'string' } }, strict: true });
const OUT = values.out ?? join(REPO_ROOT, 'docs', 'jaeger-trace.png');
const MAX_BYTES = 300 * 1024;
const say = (msg: string): void => void process.stdout.write(`docs-pictures: ${msg}\n`);

/** Poll Jaeger until a closed start trace found by clip.source=registry is there. */
async function coldStartTrace(j: Jaeger, service: string): Promise<JaegerTrace> {
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    const traces = await j.findTraces(service, { 'clip.source': 'registry' });
    const closed = traces.find((tr) => tr.spans.some((s) => s.operationName === 'clip.start' && tagOf(s, 'clip.image.layers.lazy') !== undefined));
    if (closed) return closed;
    await sleep(500);
  }
  throw new Error(`no closed start trace of ${service} with clip.source=registry in Jaeger after 120 s`);
}

/** Headless Chromium: `url` → PNG at `out`, after the page's fetches settled. */
async function screenshot(url: string, out: string, width: number, height: number): Promise<void> {
  const profile = mkdtempSync(join(tmpdir(), 'clip-chromium-'));
  try {
    await runCommand('chromium', [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--hide-scrollbars',
      `--user-data-dir=${profile}`, '--virtual-time-budget=15000', `--window-size=${width},${height}`, `--screenshot=${out}`, url,
    ], { timeoutMs: 120_000 });
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}

const code = await withStack('clip-pictures-', async (stack) => {
  say('starting a registry, Jaeger and one node');
  const registry = await stack.registry();
  const { tricky: image } = await buildAndPushImages(registry, ['tricky']);
  const jaeger = await startJaeger({ dir: join(stack.root, 'jaeger'), uiAssets: join(REPO_ROOT, 'integration', 'docs', 'trace-view') });
  stack.add('jaeger', () => jaeger.stop());
  const indexed = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, SNAPSHOTTER_BIN, 'index', image.ref, '--plain-http'], { timeoutMs: 300_000 });
  say(`clip index pushed (${indexed.stdout.trim().split('\n').length} line(s))`);
  const node = await startNode(stack, 'node-a', [registry.host], { redisAddresses: [], tracingEndpoint: jaeger.otlpHttpUrl, metricsAddress: `127.0.0.1:${await freePort()}` });
  say(`pull and run ${image.ref} cold`);
  await clipPull(node, image.ref);
  await node.containerd.ctr(runArgs(node.containerd, 'clip', image.ref, 'pictures-1', ['cat', '/data/keep.txt']), { timeoutMs: 120_000 });
  const trace = await coldStartTrace(jaeger, 'clip-snapshotter');
  const url = `${jaeger.uiUrl}/trace/${trace.traceID}`;
  say(`trace ${trace.traceID}: ${trace.spans.length} spans; screenshot of ${url}`);
  await screenshot(url, OUT, 1400, Math.min(2400, 70 + trace.spans.length * 22));
  const bytes = statSync(OUT).size;
  say(`wrote ${OUT} (${Math.round(bytes / 1024)} KiB)`);
  if (bytes > MAX_BYTES) throw new Error(`${OUT} is ${bytes} bytes, over the README's ${MAX_BYTES}`);
  return 0;
});
process.exit(code);
