/**
 * Start and stop the daemon's OpenTelemetry: a tracer provider (batch export over OTLP,
 * parent-based ratio sampling) when an endpoint is configured, and a Prometheus endpoint when a
 * metrics address is. Both are off by default; then nothing is registered and instrumentation
 * short-circuits (see `tracingEnabled`).
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { context, propagation, trace } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { Config } from '../config/index.js';
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { ATTR_HOST_NAME, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from './attributes.js';
import { installMeterProvider } from './metrics.js';
import { createSpanExporter, exporterUrl, type OtlpProtocol } from './otlp-exporter.js';
import type { PrometheusEndpoint } from './prometheus-server.js';
import { setTracingEnabled } from './tracing.js';
import { redactUserinfo } from './redact-url.js';

/** `[tracing]` plus `[metrics] address`. */
export type TelemetryConfig = Omit<Config['tracing'], 'startTraceIdleMs' | 'startTraceMaxMs'> & {
  metricsAddress: string;
  /** Defaults to package.json's version. */
  serviceVersion?: string;
  /** Defaults to process.env; tests pass their own. */
  env?: Record<string, string | undefined>;
};

/** What `startTelemetry` started. */
export interface Telemetry {
  /** True when spans are exported. */
  readonly tracing: boolean;
  /** Where spans go (undefined: off, or left to `OTEL_EXPORTER_OTLP_*`). */
  readonly traceEndpoint: string | undefined;
  /** The scrape URL, when the metrics endpoint is on. */
  readonly metricsUrl: string | undefined;
  /** Export the spans the batch processor holds now (tests, before a scrape of the collector). */
  flush(): Promise<void>;
  /** Flush pending spans, stop the metrics endpoint, unregister everything. Never rejects. */
  shutdown(): Promise<void>;
}

/** Start tracing and metrics as configured; with neither configured this registers nothing. */
export async function startTelemetry(cfg: TelemetryConfig, log: Logger = silentLogger()): Promise<Telemetry> {
  const env = cfg.env ?? process.env;
  // Built (and the resources package loaded) only when something exports: a process with
  // telemetry off never loads the OpenTelemetry SDK.
  let resource: Promise<Resource> | undefined;
  const resourceOnce = (): Promise<Resource> => (resource ??= buildResource(cfg, env));
  const tracing = await startTracing(cfg, env, resourceOnce);
  let prometheus: PrometheusEndpoint | undefined;
  try {
    // Loaded on demand, like the exporters: a daemon without metrics does not pay for them.
    if (cfg.metricsAddress !== '') prometheus = await (await import('./prometheus-server.js')).startPrometheus(cfg.metricsAddress, await resourceOnce());
  } catch (err) {
    await tracing?.shutdown();
    throw err;
  }
  if (prometheus) installMeterProvider(prometheus.provider);
  log.info({ tracing: tracing !== undefined, endpoint: redactUserinfo(tracing?.endpoint), protocol: tracing?.protocol, sample_ratio: cfg.sampleRatio, metrics: prometheus?.url }, 'telemetry started');
  let stopped: Promise<void> | undefined;
  return {
    tracing: tracing !== undefined,
    traceEndpoint: redactUserinfo(tracing?.endpoint),
    metricsUrl: prometheus?.url,
    flush: async () => tracing?.flush(),
    shutdown: () =>
      (stopped ??= (async () => {
        await tracing?.shutdown().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'trace flush failed'));
        installMeterProvider(undefined);
        await prometheus?.close().catch((err: unknown) => log.warn({ err: messageOf(err) }, 'metrics endpoint close failed'));
      })()),
  };
}

interface RunningTracing {
  endpoint: string | undefined;
  protocol: OtlpProtocol;
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

/** Tracing is on with a configured endpoint, or one from `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`. */
async function startTracing(cfg: TelemetryConfig, env: Record<string, string | undefined>, resource: () => Promise<Resource>): Promise<RunningTracing | undefined> {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true' || env.OTEL_TRACES_EXPORTER?.trim() === 'none') return undefined;
  const protocol = cfg.endpoint === '' ? envProtocol(env) ?? cfg.protocol : cfg.protocol;
  const endpoint = cfg.endpoint !== '' ? cfg.endpoint : envEndpoint(env, protocol);
  if (endpoint === '') return undefined;
  const { BatchSpanProcessor, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } = await import('@opentelemetry/sdk-trace-node');
  // An explicit sampler would override OTEL_TRACES_SAMPLER, which the SDK reads on its own.
  const sampler = env.OTEL_TRACES_SAMPLER ? undefined : new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(cfg.sampleRatio) });
  const provider = new NodeTracerProvider({
    resource: await resource(),
    ...(sampler ? { sampler } : {}),
    spanProcessors: [new BatchSpanProcessor(await createSpanExporter(endpoint, protocol))],
  });
  provider.register();
  setTracingEnabled(true);
  return {
    endpoint: exporterUrl(endpoint, protocol),
    protocol,
    flush: () => provider.forceFlush(),
    shutdown: async () => {
      setTracingEnabled(false);
      try {
        await provider.shutdown();
      } finally {
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}

/** The signal-specific endpoint as is; the base one with `/v1/traces` appended (HTTP), per the spec. */
function envEndpoint(env: Record<string, string | undefined>, protocol: OtlpProtocol): string {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (traces) return traces;
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!base) return '';
  return protocol === 'grpc' ? base : `${base.replace(/\/+$/, '')}/v1/traces`;
}

function envProtocol(env: Record<string, string | undefined>): OtlpProtocol | undefined {
  const p = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL)?.trim();
  return p === 'grpc' || p === 'http/protobuf' || p === 'http/json' ? p : undefined;
}

/** service.name/version and host.name; `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_SERVICE_NAME` win. */
async function buildResource(cfg: TelemetryConfig, env: Record<string, string | undefined>): Promise<Resource> {
  const { detectResources, envDetector, resourceFromAttributes } = await import('@opentelemetry/resources');
  const base = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: cfg.serviceName,
    [ATTR_SERVICE_VERSION]: cfg.serviceVersion ?? packageVersion(),
    [ATTR_HOST_NAME]: hostname(),
  });
  // envDetector reads process.env; only consult it when the caller did not substitute an env.
  return env === process.env ? base.merge(detectResources({ detectors: [envDetector] })) : base;
}

function packageVersion(): string {
  try {
    const pkg = new URL('../../../../package.json', import.meta.url);
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
