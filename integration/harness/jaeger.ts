/**
 * A private Jaeger all-in-one (the binary `make deps` builds from Go modules, version pinned in
 * integration/go-modules.env) on loopback: OTLP gRPC and HTTP receivers, in-memory storage, and
 * the query service (HTTP API + UI) — every port chosen free, nothing else listening — plus a
 * client for the query API the tests and the demo read traces back through.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { ManagedProcess } from './managed-process.js';
import { REPO_ROOT } from './snapshotter.js';
import { WaitAborted, waitUntil } from './wait.js';

/** Where `integration/scripts/build-jaeger.sh` leaves the binary for the pinned version. */
export function jaegerBinary(): string {
  const pins = Object.fromEntries(
    readFileSync(join(REPO_ROOT, 'integration', 'go-modules.env'), 'utf8')
      .split('\n')
      .map((l) => /^([A-Z0-9_]+)=(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1]!, m[2]!]),
  );
  const cache = process.env.CLIP_GO_CACHE ?? '/var/cache/clip-snapshotter/go';
  return join(cache, `${pins['JAEGER_MODULE']}@${pins['JAEGER_VERSION']}`, 'bin', 'jaeger');
}

/** Why Jaeger cannot start here (binary not built), or undefined. */
export function jaegerMissingReason(): string | undefined {
  const bin = jaegerBinary();
  return existsSync(bin) ? undefined : `${bin} is missing: run 'make jaeger' (integration/scripts/build-jaeger.sh; its log is beside the binary)`;
}

/** One span of a trace as Jaeger's query API returns it (`/api/traces`). */
export interface JaegerSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  references: Array<{ refType: string; traceID: string; spanID: string }>;
  startTime: number;
  duration: number;
  tags: Array<{ key: string; type: string; value: unknown }>;
  processID: string;
}

export interface JaegerTrace {
  traceID: string;
  spans: JaegerSpan[];
  processes: Record<string, { serviceName: string; tags: Array<{ key: string; value: unknown }> }>;
}

export interface Jaeger {
  /** OTLP/gRPC endpoint for `[tracing] protocol = "grpc"`. */
  otlpGrpcUrl: string;
  /** OTLP/HTTP base URL for `http/protobuf` and `http/json` (the exporter appends `/v1/traces`). */
  otlpHttpUrl: string;
  /** Query service: the UI and `/api/...`. */
  uiUrl: string;
  logPath: string;
  /** `GET /api/traces?service=…&tags=…` (tags as a JSON object); every matching trace, whole. */
  findTraces(service: string, tags?: Record<string, string | number | boolean>, limit?: number): Promise<JaegerTrace[]>;
  /** `GET /api/traces/<id>`. */
  trace(traceId: string): Promise<JaegerTrace | undefined>;
  /** `GET /api/services`. */
  services(): Promise<string[]>;
  stop(): Promise<void>;
}

/** The value of a span's tag, if it has it. */
export function tagOf(span: JaegerSpan, key: string): unknown {
  return span.tags.find((t) => t.key === key)?.value;
}

/** The span's parent (CHILD_OF reference) inside `trace`, if exported. */
export function parentOf(trace: JaegerTrace, span: JaegerSpan): JaegerSpan | undefined {
  const ref = span.references.find((r) => r.refType === 'CHILD_OF');
  return ref ? trace.spans.find((s) => s.spanID === ref.spanID) : undefined;
}

function configYaml(p: { grpc: number; http: number; query: number; queryGrpc: number; health: number }, uiAssets?: string): string {
  return `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:${p.health}
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:${p.query}
    grpc:
      endpoint: 127.0.0.1:${p.queryGrpc}
${uiAssets ? `    ui:\n      assets_path: ${JSON.stringify(uiAssets)}\n` : ''}receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${p.grpc}
      http:
        endpoint: 127.0.0.1:${p.http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
`;
}

export interface JaegerOptions {
  dir: string;
  /** A directory of static UI files for the query service to serve instead of its built-in ones. */
  uiAssets?: string;
}

/** Start Jaeger under `dir` (config and log there); resolves once the query API answers. */
export async function startJaeger(o: JaegerOptions): Promise<Jaeger> {
  const missing = jaegerMissingReason();
  if (missing) throw new Error(`Jaeger: ${missing}`);
  mkdirSync(o.dir, { recursive: true });
  const ports = { grpc: await freePort(), http: await freePort(), query: await freePort(), queryGrpc: await freePort(), health: await freePort() };
  const config = join(o.dir, 'jaeger.yaml');
  writeFileSync(config, configYaml(ports, o.uiAssets));
  const logPath = join(o.dir, 'jaeger.log');
  const proc = new ManagedProcess({ command: jaegerBinary(), args: ['--config', config], logPath });
  const uiUrl = `http://127.0.0.1:${ports.query}`;
  const getJson = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${uiUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`Jaeger GET ${path}: HTTP ${res.status}`);
    return ((await res.json()) as { data: T }).data;
  };
  try {
    await waitUntil(`Jaeger query API on ${uiUrl} (log ${logPath})`, async () => {
      if (!proc.running) throw new WaitAborted(`Jaeger exited: ${readFileSync(logPath, 'utf8').slice(-2000)}`);
      await getJson<string[]>('/api/services');
      // The receivers start after the extensions: wait for the OTLP HTTP port as well.
      const probe = await fetch(`http://127.0.0.1:${ports.http}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      return probe.status < 500;
    }, 60_000, 200);
  } catch (err) {
    await proc.stop('SIGKILL');
    throw err;
  }
  return {
    otlpGrpcUrl: `http://127.0.0.1:${ports.grpc}`,
    otlpHttpUrl: `http://127.0.0.1:${ports.http}`,
    uiUrl,
    logPath,
    findTraces: (service, tags, limit = 100) => {
      const q = new URLSearchParams({ service, limit: String(limit), lookback: '1h' });
      if (tags) q.set('tags', JSON.stringify(Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, String(v)]))));
      return getJson<JaegerTrace[]>(`/api/traces?${q.toString()}`);
    },
    trace: async (id) => (await getJson<JaegerTrace[]>(`/api/traces/${id}`).catch(() => []))[0],
    services: () => getJson<string[]>('/api/services'),
    stop: () => proc.stop('SIGTERM', 10_000),
  };
}
