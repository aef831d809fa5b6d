/** Reading registry response bodies: whole but bounded, or abandoned cleanly. */
import { ClipError } from '../errors/index.js';
import type { HttpResponse, ResponseBody } from './http.js';

/** Abandon a response body without an unhandled 'aborted' error. */
export function discard(body: ResponseBody): void {
  body.on('error', () => undefined);
  body.destroy();
}

/**
 * Read a whole body, refusing more than `maxBytes` (manifests, tokens, error documents): at once
 * when `Content-Length` (pass `res.headers`) already says so, else as soon as the surplus arrives.
 */
export async function readLimited(body: ResponseBody, maxBytes: number, what: string, headers?: HttpResponse['headers']): Promise<Buffer> {
  const declared = Number(headers?.['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) {
    discard(body);
    throw new ClipError('data_corrupt', 'CLIP_REGISTRY_BODY_TOO_LONG', `${what}: Content-Length ${declared} is larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      discard(body);
      throw new ClipError('data_corrupt', 'CLIP_REGISTRY_BODY_TOO_LONG', `${what}: larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
