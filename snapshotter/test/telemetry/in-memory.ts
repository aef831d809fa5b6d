/** Test-only telemetry: spans into an InMemorySpanExporter, metrics collected on demand. */
import { context, propagation, trace } from '@opentelemetry/api';
import { MeterProvider, MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { installMeterProvider, setTracingEnabled } from '../../src/telemetry/index.js';

interface Teardown {
  teardown(fn: () => Promise<void> | void): void;
}

/** Register a tracer provider exporting into memory until the test ends. */
export function inMemoryTracing(t: Teardown): InMemorySpanExporter {
  const exporter = new InMemorySpanExporter();
  const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  provider.register();
  setTracingEnabled(true);
  t.teardown(async () => {
    setTracingEnabled(false);
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  });
  return exporter;
}

class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** Sums of counters (and histogram counts) by name and attribute subset. */
export interface MetricsProbe {
  value(name: string, attrs?: Record<string, string>): Promise<number>;
}

/** Install the daemon's instruments on an in-memory meter until the test ends. */
export function inMemoryMetrics(t: Teardown): MetricsProbe {
  const reader = new PullReader();
  const provider = new MeterProvider({ readers: [reader] });
  installMeterProvider(provider);
  t.teardown(async () => {
    installMeterProvider(undefined);
    await provider.shutdown();
  });
  return {
    async value(name, attrs = {}) {
      const { resourceMetrics } = await reader.collect();
      let total = 0;
      for (const sm of resourceMetrics.scopeMetrics) {
        for (const m of sm.metrics) {
          if (m.descriptor.name !== name) continue;
          for (const dp of m.dataPoints as Array<DataPoint<number | Histogram>>) {
            if (!Object.entries(attrs).every(([k, v]) => dp.attributes[k] === v)) continue;
            total += typeof dp.value === 'number' ? dp.value : dp.value.count;
          }
        }
      }
      return total;
    },
  };
}

/** Spans by name. */
export const named = (spans: ReadableSpan[], name: string): ReadableSpan[] => spans.filter((s) => s.name === name);

/** The children of `parent` among `spans`. */
export const childrenOf = (spans: ReadableSpan[], parent: ReadableSpan): ReadableSpan[] =>
  spans.filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
