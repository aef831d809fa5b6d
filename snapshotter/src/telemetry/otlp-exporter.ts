/** The OTLP span exporter for a `[tracing] protocol`, with the endpoint normalised per protocol. */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

export type OtlpProtocol = 'grpc' | 'http/protobuf' | 'http/json';

/**
 * `endpoint` as an exporter URL: a scheme is added when missing (`http://`), and for the HTTP
 * protocols an endpoint without a path gets `/v1/traces` (Jaeger and collectors listen there).
 * An empty endpoint leaves the URL to the exporter's own defaults.
 */
export function exporterUrl(endpoint: string, protocol: OtlpProtocol): string | undefined {
  if (endpoint === '') return undefined;
  const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`);
  if (protocol !== 'grpc' && (url.pathname === '' || url.pathname === '/')) url.pathname = '/v1/traces';
  const s = url.toString();
  return protocol === 'grpc' ? s.replace(/\/$/, '') : s;
}

/**
 * An exporter speaking `protocol` to `endpoint` (empty: from the environment). Loaded on demand:
 * the three exporters cost a daemon that traces nothing ~100 ms of start-up.
 */
export async function createSpanExporter(endpoint: string, protocol: OtlpProtocol): Promise<SpanExporter> {
  const url = exporterUrl(endpoint, protocol);
  const cfg = url === undefined ? {} : { url };
  switch (protocol) {
    case 'grpc':
      return new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter(cfg);
    case 'http/protobuf':
      return new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter(cfg);
    case 'http/json':
      return new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter(cfg);
    default: {
      const never: never = protocol;
      return never;
    }
  }
}
