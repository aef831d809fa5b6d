/**
 * The Prometheus scrape endpoint: the OpenTelemetry Prometheus exporter as the MeterProvider's
 * reader, served by our own `node:http` server so we choose the bind address (port 0 in tests)
 * and can report where it actually listens.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { Resource } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { invalidArgument, unavailable } from '../errors/index.js';

/** A running scrape endpoint and the provider behind it. */
export interface PrometheusEndpoint {
  provider: MeterProvider;
  /** `http://host:port/metrics` as bound. */
  url: string;
  close(): Promise<void>;
}

/** Split `host:port` (empty host: all interfaces). */
export function parseHostPort(address: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(address);
  const port = Number(m?.[2]);
  if (!m || port > 65535) throw invalidArgument('CLIP_METRICS_ADDRESS', `metrics address "${address}" is not host:port`);
  return { host: (m[1] ?? '').replace(/^\[(.*)\]$/, '$1'), port };
}

/** Start serving `/metrics` on `address`. */
export async function startPrometheus(address: string, resource: Resource): Promise<PrometheusEndpoint> {
  const { host, port } = parseHostPort(address);
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const provider = new MeterProvider({ resource, readers: [exporter] });
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url ?? '').split('?')[0] === '/metrics') return exporter.getMetricsRequestHandler(req, res);
    res.statusCode = 404;
    res.end('not found\n');
  });
  await listen(server, host, port);
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    provider,
    url: `http://${shownHost}:${bound.port}/metrics`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await provider.shutdown();
    },
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(unavailable('CLIP_METRICS_LISTEN', `metrics endpoint ${host}:${port}: ${err.message}`, err)));
    server.listen(port, host === '' ? undefined : host, () => resolve());
  });
}
