/** The OTLP span exporter for a `[tracing] protocol`, with the endpoint normalised per protocol. */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';

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

/** An exporter speaking `protocol` to `endpoint` (empty: from the environment). */
export function createSpanExporter(endpoint: string, protocol: OtlpProtocol): SpanExporter {
  const url = exporterUrl(endpoint, protocol);
  const cfg = url === undefined ? {} : { url };
  switch (protocol) {
    case 'grpc':
      return new GrpcExporter(cfg);
    case 'http/protobuf':
      return new ProtoExporter(cfg);
    case 'http/json':
      return new JsonExporter(cfg);
    default: {
      const never: never = protocol;
      return never;
    }
  }
}
