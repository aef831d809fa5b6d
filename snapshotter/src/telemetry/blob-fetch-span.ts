/**
 * The `clip.registry.fetch_blob` span and the registry fetch metrics for one blob GET. The span
 * lives until the body stream closes, so its duration is the whole transfer; it carries HTTP
 * semantic-convention attributes, with credentials and query stripped from `url.full`.
 */
import { SpanKind, type Span } from '@opentelemetry/api';
import type { Readable } from 'node:stream';
import * as A from './attributes.js';
import { recordRegistryFetch } from './metrics.js';
import { recordSpanError, tracer, tracingEnabled } from './tracing.js';

/** Observes one blob GET from request to the end of its body. */
export class BlobFetchObserver {
  readonly #span: Span | undefined;
  #bytes = 0;
  #done = false;

  constructor(digest: string, range?: { offset: number; length: number }) {
    if (!tracingEnabled()) return;
    const attrs = {
      [A.ATTR_HTTP_REQUEST_METHOD]: 'GET',
      [A.ATTR_CLIP_SOURCE]: 'registry',
      [A.ATTR_CLIP_BLOB_DIGEST]: digest,
      ...(range ? { 'http.request.header.range': [`bytes=${range.offset}-${range.offset + range.length - 1}`] } : {}),
    };
    this.#span = tracer().startSpan(A.SPAN_REGISTRY_FETCH_BLOB, { kind: SpanKind.CLIENT, attributes: attrs });
  }

  /** The response arrived (after redirects) from `url` with `status`. */
  response(url: URL, status: number): void {
    if (!this.#span) return;
    this.#span.setAttributes({
      [A.ATTR_URL_FULL]: redactUrl(url),
      [A.ATTR_SERVER_ADDRESS]: url.hostname,
      [A.ATTR_SERVER_PORT]: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      [A.ATTR_HTTP_RESPONSE_STATUS_CODE]: status,
    });
    if (status >= 400) this.#span.setAttribute(A.ATTR_ERROR_TYPE, String(status));
  }

  /** The request failed before a body stream was handed out. */
  fail(err: unknown): void {
    this.#finish(err);
  }

  /**
   * Count `body`'s bytes (it must already be piped, i.e. flowing) and end the span when `out`,
   * the stream the caller consumes, ends or fails.
   */
  watch(body: Readable, out: Readable): void {
    body.on('data', (chunk: Buffer) => (this.#bytes += chunk.length));
    out.once('error', (err) => this.#finish(err));
    out.once('end', () => this.#finish(undefined));
    out.once('close', () => this.#finish(out.readableEnded ? undefined : new Error('blob stream closed before its end')));
  }

  #finish(err: unknown): void {
    if (this.#done) return;
    this.#done = true;
    recordRegistryFetch(err === undefined ? 'ok' : 'error', this.#bytes);
    if (!this.#span) return;
    this.#span.setAttribute(A.ATTR_HTTP_RESPONSE_BODY_SIZE, this.#bytes);
    if (err !== undefined) recordSpanError(this.#span, err);
    this.#span.end();
  }
}

/** The URL without user info or query string (registry tokens never travel in URLs, but mirrors' `ns` and signed redirects do). */
export function redactUrl(url: URL): string {
  const u = new URL(url.toString());
  u.username = '';
  u.password = '';
  u.search = '';
  return u.toString();
}
