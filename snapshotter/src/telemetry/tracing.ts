/**
 * The daemon's tracer and the helpers instrumented code uses. While tracing is off (the default)
 * every helper runs its function directly: no span objects, no context switches.
 */
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Link, type Span, type Tracer } from '@opentelemetry/api';
import { findClipError } from '../errors/index.js';
import { ATTR_CLIP_ERROR_CODE, ATTR_ERROR_TYPE } from './attributes.js';

const SCOPE = 'clip-snapshotter';
let enabled = false;
const NOOP_SPAN: Span = trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 });

/** Whether a tracer provider is installed; instrumentation checks this before building spans. */
export function tracingEnabled(): boolean {
  return enabled;
}

/** Called by `startTelemetry` (and tests) after registering or removing a tracer provider. */
export function setTracingEnabled(on: boolean): void {
  enabled = on;
}

/** The tracer every span of this daemon comes from. */
export function tracer(): Tracer {
  return trace.getTracer(SCOPE);
}

export interface SpanOptions {
  kind?: SpanKind;
  links?: Link[];
  /** Start a new trace even when a span is active (background work linked to its trigger). */
  root?: boolean;
}

/**
 * Run `fn` inside an active span that ends when `fn` settles; a rejection sets the span's status
 * and records the exception. With tracing off, `fn` gets a non-recording span and runs as is.
 */
export async function withSpan<T>(name: string, attrs: Attributes, fn: (span: Span) => Promise<T>, opts: SpanOptions = {}): Promise<T> {
  if (!enabled) return fn(NOOP_SPAN);
  const parent = opts.root ? ROOT_CONTEXT : context.active();
  const spanOpts = { attributes: attrs, kind: opts.kind ?? SpanKind.INTERNAL, links: opts.links ?? [], root: opts.root ?? false };
  return tracer().startActiveSpan(name, spanOpts, parent, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordSpanError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Mark a span failed: status ERROR with the message, the exception event, and `error.type`. */
export function recordSpanError(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  const clip = findClipError(err);
  const e = err instanceof Error ? err : new Error(String(err));
  span.recordException(e);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  span.setAttribute(ATTR_ERROR_TYPE, clip?.code ?? e.name);
  if (clip) span.setAttribute(ATTR_CLIP_ERROR_CODE, clip.code);
}

/** The span active in the current async context, if it records. */
export function activeRecordingSpan(): Span | undefined {
  if (!enabled) return undefined;
  const span = trace.getActiveSpan();
  return span?.isRecording() ? span : undefined;
}
