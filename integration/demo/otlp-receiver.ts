/**
 * A minimal OTLP/HTTP traces receiver on loopback so the demo can show what the daemons traced
 * without Jaeger. JSON bodies are parsed (span names counted); protobuf bodies only counted.
 */
import { createServer, type Server } from 'node:http';
import { appendFileSync } from 'node:fs';

export interface OtlpReceiver {
  endpoint: string;
  requests: number;
  spans: number;
  /** span name → count */
  names: Map<string, number>;
  close(): Promise<void>;
}

interface OtlpJson {
  resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: Array<{ name?: string }> }> }>;
}

/** Listen on 127.0.0.1:0; every export is appended to `dumpPath` as one JSON line. */
export async function startOtlpReceiver(dumpPath: string): Promise<OtlpReceiver> {
  const r: Omit<OtlpReceiver, 'endpoint' | 'close'> = { requests: 0, spans: 0, names: new Map() };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.requests++;
      const body = Buffer.concat(chunks);
      if ((req.headers['content-type'] ?? '').includes('json')) record(r, body, dumpPath);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return Object.assign(r, {
    endpoint: `http://127.0.0.1:${port}/v1/traces`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

function record(r: Omit<OtlpReceiver, 'endpoint' | 'close'>, body: Buffer, dumpPath: string): void {
  try {
    const doc = JSON.parse(body.toString('utf8')) as OtlpJson;
    appendFileSync(dumpPath, `${JSON.stringify(doc)}\n`);
    for (const rs of doc.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          r.spans++;
          const name = s.name ?? '?';
          r.names.set(name, (r.names.get(name) ?? 0) + 1);
        }
      }
    }
  } catch {
    // not JSON after all: counted as a request only
  }
}

/** Counter lines from a Prometheus endpoint whose names mention one of `words` (empty if unreachable). */
export async function scrapeCounters(address: string, words: string[]): Promise<string[]> {
  if (address === '') return [];
  try {
    const res = await fetch(`http://${address}/metrics`, { signal: AbortSignal.timeout(3000) });
    if (!res.ok) return [];
    const text = await res.text();
    return text.split('\n').filter((l) => !l.startsWith('#') && l.trim() !== '' && words.some((w) => l.includes(w)));
  } catch {
    return [];
  }
}
