/**
 * The one OTLP/HTTP trace receiver of the tests, the benchmarks and the demo: `POST /v1/traces`
 * with the `http/json` encoding, flattened into one record per span. Protobuf bodies are answered
 * 415 (decoding them would need the OTLP .proto files; configure `protocol = "http/json"` against
 * this receiver). Optionally every accepted export is appended to a file as one JSON line.
 */
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './wait.js';

type AttrValue = string | number | boolean | AttrValue[] | undefined;

/** One received span, ids as hex, attributes as plain values. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  status: { code: number; message: string | undefined };
  events: string[];
  links: Array<{ traceId: string; spanId: string }>;
  resource: Record<string, AttrValue>;
}

export interface OtlpReceiver {
  /** The base URL (`http://127.0.0.1:PORT`); `/v1/traces` is appended by the exporter. */
  url: string;
  /** The full traces endpoint, `${url}/v1/traces`, for a `[tracing] endpoint`. */
  endpoint: string;
  /** Every span received so far. */
  spans(): ReceivedSpan[];
  /** Wait until `predicate` holds over the spans received (or throw after `timeoutMs`). */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  /** Export requests accepted. */
  accepted(): number;
  /** Export requests refused (wrong path or encoding). */
  rejected(): number;
  stop(): Promise<void>;
}

export interface OtlpReceiverOptions {
  /** Append every accepted export request, as received, to this file (one JSON document a line). */
  dumpPath?: string;
}

interface JsonKeyValue {
  key: string;
  value: JsonAnyValue;
}
interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: JsonAnyValue[] };
}
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number; message?: string };
  events?: Array<{ name: string }>;
  links?: Array<{ traceId: string; spanId: string }>;
}
interface JsonRequest {
  resourceSpans?: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: Array<{ spans?: JsonSpan[] }> }>;
}

/** Start a receiver on a loopback port. */
export async function startOtlpReceiver(opts: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  let accepted = 0;
  let rejected = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const json = (req.headers['content-type'] ?? '').includes('json');
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !json) {
        rejected++;
        res.writeHead(json ? 404 : 415).end();
        return;
      }
      try {
        const body = Buffer.concat(chunks).toString('utf8');
        received.push(...flatten(JSON.parse(body) as JsonRequest));
        accepted++;
        if (opts.dumpPath !== undefined) appendFileSync(opts.dumpPath, `${body.replace(/\n/g, '')}\n`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } catch {
        rejected++;
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    endpoint: `${url}/v1/traces`,
    spans: () => [...received],
    accepted: () => accepted,
    rejected: () => rejected,
    async waitFor(predicate, timeoutMs = 15_000) {
      try {
        await waitUntil('OTLP spans matching the condition', () => Promise.resolve(predicate(received)), timeoutMs, 50);
      } catch (err) {
        throw new Error(`OTLP receiver: ${err instanceof Error ? err.message : String(err)} (${received.length} spans received)`);
      }
      return [...received];
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function flatten(req: JsonRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId || undefined,
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: attrs(s.attributes),
          status: { code: s.status?.code ?? 0, message: s.status?.message },
          events: (s.events ?? []).map((e) => e.name),
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          resource,
        });
      }
    }
  }
  return out;
}

function attrs(kvs: JsonKeyValue[] | undefined): Record<string, AttrValue> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, value(kv.value)]));
}

function value(v: JsonAnyValue): AttrValue {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(value);
  return undefined;
}

/** The children of `parent`. */
export const childrenOf = (spans: ReceivedSpan[], parent: ReceivedSpan): ReceivedSpan[] =>
  spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId);

/** Span name → how many spans of that name, most frequent first. */
export function countByName(spans: ReceivedSpan[]): Array<[string, number]> {
  const counts = new Map<string, number>();
  for (const s of spans) counts.set(s.name, (counts.get(s.name) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1]);
}
