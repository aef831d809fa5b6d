/**
 * Child process of the tracing-overhead benchmark (tracing is process-global, so each setting runs
 * in its own process). Serves a layer from LayerStore's disk cache and times cached reads.
 * Usage: node traced-read-worker.js off|default|all ENDPOINT LAYER_MB RANDOM_READS
 * → one JSON line {randomUsPerRead, randomMBps, seqMBps}, each the best of several rounds.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { NoContentCache } from '../../snapshotter/src/contentcache/index.js';
import { LayerStore, type LayerReader, type LayerRef } from '../../snapshotter/src/storage/index.js';
import { startTelemetry, type Telemetry } from '../../snapshotter/src/telemetry/index.js';

const [mode, endpoint, layerMbArg, readsArg] = process.argv.slice(2);
if (mode !== 'off' && mode !== 'default' && mode !== 'all') {
  process.stderr.write('usage: traced-read-worker.js off|default|all ENDPOINT LAYER_MB RANDOM_READS\n');
  process.exit(2);
}
const size = Number(layerMbArg ?? 64) << 20;
const reads = Number(readsArg ?? 20000);
const ROUNDS = 5;

const data = Buffer.alloc(size);
randomFillSync(data, 512); // leading zeros: never mistaken for a gzip/zstd stream
const hex = createHash('sha256').update(data).digest('hex');
const ref: LayerRef = { ref: 'bench.invalid/layer:1', digest: `sha256:${hex}`, diffId: `sha256:${hex}`, uncompressedSize: size };

const tel: Telemetry | undefined = mode === 'off'
  ? undefined
  : await startTelemetry({ endpoint: endpoint ?? '', protocol: 'http/json', sampleRatio: 1, serviceName: 'clip-bench', metricsAddress: '' });
const dir = await mkdtemp(join(tmpdir(), 'clip-traced-read-'));
const store = await LayerStore.create({
  cacheDir: join(dir, 'layers'),
  blobs: { open: async () => Readable.from([data]), exists: async () => true },
  contentCache: new NoContentCache(),
  ...(mode === 'all' ? { diskSpanIntervalMs: 0 } : {}),
});
const reader = store.open(ref);

async function pass(r: LayerReader, block: number): Promise<number> {
  const buf = Buffer.alloc(block);
  const t0 = performance.now();
  for (let off = 0; off < size; off += block) await r.read(buf, 0, Math.min(block, size - off), off);
  return performance.now() - t0;
}

try {
  await pass(reader, 1 << 20); // downloads the layer to disk; the next pass is all disk hits
  await pass(reader, 1 << 20);
  // Best of several rounds: the machine is shared, and interference only ever adds time.
  const block = 4096;
  const buf = Buffer.alloc(block);
  const perRound = Math.ceil(reads / ROUNDS);
  let x = 12345;
  let randUs = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = performance.now();
    for (let i = 0; i < perRound; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      await reader.read(buf, 0, block, (x % (size / block)) * block);
    }
    randUs = Math.min(randUs, ((performance.now() - t0) * 1000) / perRound);
  }
  let seqMs = Infinity;
  for (let round = 0; round < 3; round++) seqMs = Math.min(seqMs, await pass(reader, 128 << 10));
  process.stdout.write(`${JSON.stringify({ randomUsPerRead: randUs, randomMBps: block / randUs, seqMBps: size / 1e6 / (seqMs / 1000) })}\n`);
} finally {
  await reader.close();
  await store.close();
  await tel?.shutdown();
  await rm(dir, { recursive: true, force: true });
}
