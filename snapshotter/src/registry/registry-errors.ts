/** The ClipErrors a registry exchange ends in: unreachable, or a status this client did not want. */
import { ClipError, unavailable as unavailableError } from '../errors/index.js';
import type { HttpResponse } from './http.js';
import { readLimited } from './response-body.js';

/** An `unavailable` registry error with the stable registry code. */
export function unavailable(message: string, cause?: unknown): ClipError {
  return unavailableError('CLIP_REGISTRY_UNAVAILABLE', message, cause);
}

/** Turn an unexpected response into a ClipError whose kind fits the status; consumes the body. */
export async function statusError(res: HttpResponse & { authRefused?: boolean }, what: string): Promise<ClipError> {
  const detail = await registryErrorDetail(res);
  const msg = `${what}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`;
  const s = res.status;
  if (s === 404) return new ClipError('not_found', 'CLIP_REGISTRY_NOT_FOUND', `${msg}: not found`);
  if ((s === 401 || s === 403) && res.authRefused === true) {
    return new ClipError('failed_precondition', 'CLIP_REGISTRY_CREDENTIALS_REFUSED', `${msg}: credentials refused after every credential source was tried`);
  }
  if (s === 401) return new ClipError('failed_precondition', 'CLIP_REGISTRY_UNAUTHORIZED', `${msg}: unauthorized`);
  if (s === 403) return new ClipError('failed_precondition', 'CLIP_REGISTRY_DENIED', `${msg}: access denied`);
  if (s === 429 || s >= 500) return unavailable(`${msg} after retries`);
  if (s === 400 || s === 413 || s === 416) return new ClipError('invalid_argument', 'CLIP_REGISTRY_REJECTED', `${msg}: rejected by the registry`);
  if (s === 405) return new ClipError('unimplemented', 'CLIP_REGISTRY_METHOD_NOT_ALLOWED', `${msg}: not supported by the registry`);
  return new ClipError('failed_precondition', 'CLIP_REGISTRY_UNEXPECTED_STATUS', `${msg}: unexpected status`);
}

/** The registry's `{"errors":[{code,message}]}` summary, if the body holds one. */
async function registryErrorDetail(res: HttpResponse): Promise<string> {
  try {
    const text = (await readLimited(res.body, 16 * 1024, 'error body')).toString('utf8');
    const doc = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
    return (doc.errors ?? [])
      .map((e) => [e.code, e.message].filter((x) => typeof x === 'string').join(': '))
      .filter((s) => s !== '')
      .join('; ')
      .slice(0, 300);
  } catch {
    return '';
  }
}

const AUTH_REFUSAL_CODES: ReadonlySet<string> = new Set(['CLIP_REGISTRY_CREDENTIALS_REFUSED', 'CLIP_REGISTRY_UNAUTHORIZED', 'CLIP_REGISTRY_DENIED']);

/** True for a registry's 401/403 after every credential source was tried: retrying soon cannot help. */
export function isAuthRefusal(err: unknown): boolean {
  return err instanceof ClipError && AUTH_REFUSAL_CODES.has(err.code);
}
