/** One server span per gRPC call, continuing a W3C trace context the caller sent in metadata. */
import { context, propagation, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type TextMapGetter } from '@opentelemetry/api';
import { ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_METHOD, ATTR_RPC_SERVICE, ATTR_RPC_SYSTEM } from './attributes.js';
import { recordSpanError, tracer, tracingEnabled } from './tracing.js';

/** gRPC metadata as `Metadata.getMap()` returns it. */
export type RpcCarrier = Record<string, string | Buffer | undefined>;

const getter: TextMapGetter<RpcCarrier> = {
  keys: (c) => Object.keys(c),
  get: (c, key) => {
    const v = c[key.toLowerCase()];
    return v === undefined ? undefined : String(v);
  },
};

// Semantic conventions: on a server, only these codes make the span an error; NOT_FOUND and
// ALREADY_EXISTS are how the Snapshots protocol talks (remote prepare answers ALREADY_EXISTS).
const SERVER_ERROR_CODES = new Set([2, 4, 12, 13, 14, 15]);

/**
 * Run one RPC inside a server span named `<service>/<method>` with `rpc.*` attributes and the
 * final `rpc.grpc.status_code` (`codeOf` maps a rejection to its gRPC code). Without a caller's
 * context, `fallbackParent` may give one (a start trace).
 */
export function traceRpc<T>(
  service: string, method: string, carrier: RpcCarrier | undefined, attrs: Attributes,
  fn: () => Promise<T>, codeOf: (err: unknown) => number, fallbackParent?: () => Context | undefined,
): Promise<T> {
  if (!tracingEnabled()) return fn();
  const extracted = carrier ? propagation.extract(context.active(), carrier, getter) : context.active();
  // A caller's trace context wins; without one the RPC may join a start trace (start-traces.ts).
  const parent = trace.getSpanContext(extracted) ? extracted : fallbackParent?.() ?? extracted;
  const spanAttrs = { ...attrs, [ATTR_RPC_SYSTEM]: 'grpc', [ATTR_RPC_SERVICE]: service, [ATTR_RPC_METHOD]: method };
  return tracer().startActiveSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes: spanAttrs }, parent, async (span) => {
    try {
      const res = await fn();
      span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, 0);
      return res;
    } catch (err) {
      const code = codeOf(err);
      span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
      if (SERVER_ERROR_CODES.has(code)) recordSpanError(span, err);
      else span.setStatus({ code: SpanStatusCode.UNSET });
      throw err;
    } finally {
      span.end();
    }
  });
}
