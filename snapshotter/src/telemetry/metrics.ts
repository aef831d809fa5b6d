/**
 * The daemon's metric instruments. They exist only while a MeterProvider is installed (the
 * Prometheus endpoint is configured); until then every `record*` call is a no-op.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { ValueType, type Counter, type Histogram, type Meter, type MeterProvider } from '@opentelemetry/api';
import * as N from './attributes.js';

/** Which tier served a read (mirrors storage's ReadSource). */
export type ReadTier = 'disk' | 'content_cache' | 'registry';

interface Instruments {
  reads: Counter;
  readBytes: Counter;
  readErrors: Counter;
  readDuration: Histogram;
  splicedReads: Counter;
  registryFetches: Counter;
  registryFetchBytes: Counter;
  publishes: Counter;
  publishFailures: Counter;
  fallbacks: Counter;
  fuseErrors: Counter;
  verificationFailures: Counter;
  authFailures: Counter;
  backgroundWaits: Counter;
  backgroundWaitSeconds: Counter;
}

// A disk hit is tens of microseconds, a cold registry read can take seconds.
const LATENCY_BUCKETS_S = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

let current: Instruments | undefined;
let mountedLayers = 0;

/** One layer of one image as the per-layer metrics see it (observed at scrape time). */
export interface LayerMetricsSample {
  image: string;
  layer: string;
  /** Bytes by way: registry ways compressed, `content_cache` uncompressed. */
  fetched: Record<string, number>;
  /** Bytes handed to reads, by tier. */
  served: Record<string, number>;
  /** 1 when served lazily, 0 when fetched whole or local; absent while unread. */
  lazy?: number;
  /** Seconds from mount to first read, once read. */
  firstReadSeconds?: number;
}
let layerSamples: () => LayerMetricsSample[] = () => [];

/** Where the `clip_layer_*` metrics read their per-image, per-layer values from (the layer ledger). */
export function setLayerMetricsSource(fn: () => LayerMetricsSample[]): void {
  layerSamples = fn;
}

let loopDelay: IntervalHistogram | undefined;

/** Create the instruments on `provider`'s meter, or drop them (undefined). */
export function installMeterProvider(provider: MeterProvider | undefined): void {
  loopDelay?.disable();
  loopDelay = undefined;
  current = provider ? createInstruments(provider.getMeter('clip-snapshotter')) : undefined;
}

// Every FUSE read and RPC is answered on the event loop: its delay is how long any of them can be
// held up by work on it (a large index decode, a busy span). Since the previous scrape.
function observeEventLoopDelay(m: Meter): void {
  const resolutionMs = 10;
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  // Samples are the whole interval between timer ticks: the delay is what exceeds the resolution.
  const delayS = (ns: number): number => Math.max(0, ns / 1e6 - resolutionMs) / 1e3;
  h.enable();
  loopDelay = h;
  const gauge = m.createObservableGauge(N.METRIC_EVENT_LOOP_DELAY, {
    description: 'Event-loop delay since the previous scrape (p50, p99, max)', unit: 's',
  });
  gauge.addCallback((r) => {
    if (h.count > 0) {
      r.observe(delayS(h.percentile(50)), { quantile: '0.5' });
      r.observe(delayS(h.percentile(99)), { quantile: '0.99' });
      r.observe(delayS(h.max), { quantile: 'max' });
    }
    h.reset();
  });
}

function createInstruments(m: Meter): Instruments {
  const counter = (name: string, description: string, unit?: string) => m.createCounter(name, { description, valueType: ValueType.INT, ...(unit ? { unit } : {}) });
  const gauge = m.createObservableGauge(N.METRIC_MOUNTED_LAYERS, { description: 'Layers currently mounted over FUSE', valueType: ValueType.INT });
  gauge.addCallback((r) => r.observe(mountedLayers));
  observeEventLoopDelay(m);
  const fetched = m.createObservableCounter(N.METRIC_LAYER_FETCHED_BYTES, { description: 'Bytes a layer fetched, per image and layer, by way (on_demand, prefetch, background, whole, index_build: compressed from the registry; content_cache: uncompressed)', unit: 'By', valueType: ValueType.INT });
  fetched.addCallback((r) => {
    for (const l of layerSamples()) for (const [via, v] of Object.entries(l.fetched)) r.observe(v, { image: l.image, layer: l.layer, via });
  });
  const served = m.createObservableCounter(N.METRIC_LAYER_SERVED_BYTES, { description: 'Bytes of a layer handed to reads, per image and layer, by tier (source)', unit: 'By', valueType: ValueType.INT });
  served.addCallback((r) => {
    for (const l of layerSamples()) for (const [source, v] of Object.entries(l.served)) r.observe(v, { image: l.image, layer: l.layer, source });
  });
  const lazy = m.createObservableGauge(N.METRIC_LAYER_LAZY, { description: '1 when a layer was served lazily, 0 when it was fetched whole or was already local', valueType: ValueType.INT });
  lazy.addCallback((r) => {
    for (const l of layerSamples()) if (l.lazy !== undefined) r.observe(l.lazy, { image: l.image, layer: l.layer });
  });
  const firstRead = m.createObservableGauge(N.METRIC_LAYER_FIRST_READ, { description: 'Seconds from mounting a layer to its first read', unit: 's' });
  firstRead.addCallback((r) => {
    for (const l of layerSamples()) if (l.firstReadSeconds !== undefined) r.observe(l.firstReadSeconds, { image: l.image, layer: l.layer });
  });
  return {
    reads: counter(N.METRIC_READS, 'Layer reads served, by tier (source)'),
    readBytes: counter(N.METRIC_READ_BYTES, 'Bytes of uncompressed layer served, by tier (source)', 'By'),
    readErrors: counter(N.METRIC_READ_ERRORS, 'Layer reads that failed in a tier, by tier (source)'),
    splicedReads: counter(N.METRIC_SPLICED_READS, 'Disk-tier reads whose bytes the FUSE driver spliced from a file to the kernel (no copy through the daemon)'),
    readDuration: m.createHistogram(N.METRIC_READ_DURATION, {
      description: 'Latency of layer reads, by the tier that served them (source)',
      unit: 's',
      advice: { explicitBucketBoundaries: LATENCY_BUCKETS_S },
    }),
    registryFetches: counter(N.METRIC_REGISTRY_FETCHES, 'Blob GETs sent to registries, by outcome'),
    registryFetchBytes: counter(N.METRIC_REGISTRY_FETCH_BYTES, 'Compressed blob bytes received from registries', 'By'),
    publishes: counter(N.METRIC_CC_PUBLISHES, 'Layers published to the ContentCache'),
    publishFailures: counter(N.METRIC_CC_PUBLISH_FAILURES, 'Failed ContentCache publishes'),
    fallbacks: counter(N.METRIC_LAZY_FALLBACKS, 'Layers prepared as ordinary snapshots instead of lazy mounts, by reason'),
    fuseErrors: counter(N.METRIC_FUSE_ERRORS, 'FUSE requests answered with an errno, by op'),
    verificationFailures: counter(N.METRIC_VERIFICATION_FAILURES, 'Untrusted objects refused by a tag or digest check, by source and kind'),
    authFailures: counter(N.METRIC_REGISTRY_AUTH_FAILURES, 'Registry requests and token fetches refused (401/403) after every credential source was tried, by stage and status'),
    backgroundWaits: counter(N.METRIC_BACKGROUND_WAITS, 'Batches of background work (fill, hash, publish, extract) that waited for FUSE requests to pause, by stage and outcome (idle: the reads paused; max_delay: let through by the bound)'),
    backgroundWaitSeconds: m.createCounter(N.METRIC_BACKGROUND_WAIT_SECONDS, { description: 'Time batches of background work waited for FUSE requests to pause, by stage', unit: 's', valueType: ValueType.DOUBLE }),
  };
}

/** A read served by `tier`. */
export function recordRead(tier: ReadTier, bytes: number, durationS: number): void {
  if (!current) return;
  const attrs = { source: tier };
  current.reads.add(1, attrs);
  current.readBytes.add(bytes, attrs);
  current.readDuration.record(durationS, attrs);
}

/** A disk-tier read the FUSE driver spliced from a file (also counted by `recordRead`). */
export function recordSplicedRead(): void {
  current?.splicedReads.add(1);
}

/** A read that failed in `tier`. */
export function recordReadError(tier: ReadTier): void {
  current?.readErrors.add(1, { source: tier });
}

/** One blob GET: `ok` once the body is complete, `error` otherwise; bytes as received. */
export function recordRegistryFetch(outcome: 'ok' | 'error', bytes: number): void {
  if (!current) return;
  current.registryFetches.add(1, { outcome });
  if (bytes > 0) current.registryFetchBytes.add(bytes);
}

/** A ContentCache publish finished: stored, skipped by the backend, or failed. */
export function recordPublish(outcome: 'ok' | 'skipped' | 'error'): void {
  if (!current) return;
  current.publishes.add(1, { outcome });
  if (outcome === 'error') current.publishFailures.add(1);
}

/** A layer that could not be mounted lazily and fell back to an ordinary snapshot. */
export function recordFallback(reason: string): void {
  current?.fallbacks.add(1, { reason });
}

/** The number of layers mounted right now (observed at scrape time). */
export function setMountedLayers(n: number): void {
  mountedLayers = Math.max(0, n);
}

/** Adjust the mounted-layers gauge by `delta` (+1 on mount, -1 on unmount). */
export function addMountedLayers(delta: number): void {
  setMountedLayers(mountedLayers + delta);
}

/** A FUSE request failed with `errno` (negative, as returned to the kernel). */
export function recordFuseError(op: string, errno: number): void {
  current?.fuseErrors.add(1, { op, errno: String(-errno) });
}

/** An untrusted object (e.g. a ContentCache chunk) failed a check its writer cannot forge; read as a miss. */
export function recordVerificationFailure(source: string, kind: string): void {
  current?.verificationFailures.add(1, { source, kind });
}

/** A batch of background `stage` waited `seconds` for FUSE requests to pause (`forced`: let through by the bound). */
export function recordBackgroundWait(stage: string, seconds: number, forced: boolean): void {
  if (!current) return;
  current.backgroundWaits.add(1, { stage, outcome: forced ? 'max_delay' : 'idle' });
  current.backgroundWaitSeconds.add(seconds, { stage });
}

/** A registry refused every credential source (or anonymous access): `stage` token or request, HTTP status. */
export function recordRegistryAuthFailure(stage: 'token' | 'request', status: number): void {
  current?.authFailures.add(1, { stage, status: String(status) });
}
