/** The ClipErrors a registry exchange ends in: unreachable, or a status this client did not want. */
import { ClipError, unavailable as unavailableError } from '../errors/index.js';
import { REGISTRY_ERROR_CODES } from './error-codes.js';
import type { HttpResponse } from './http.js';
import { readLimited } from './response-body.js';

/** An `unavailable` registry error with the stable registry code. */
export function unavailable(message: string, cause?: unknown): ClipError {
  return unavailableError(REGISTRY_ERROR_CODES.unavailable, message, cause);
}

/** Turn an unexpected response into a ClipError whose kind fits the status; consumes the body. */
export async function statusError(res: HttpResponse, what: string): Promise<ClipError> {
  const detail = await registryErrorDetail(res);
  const msg = `${what}: HTTP ${res.status}${detail ? ` (${detail})` : ''}`;
  const s = res.status;
  if (s === 404) return new ClipError('not_found', REGISTRY_ERROR_CODES.notFound, `${msg}: not found`);
  if (s === 401) return new ClipError('failed_precondition', REGISTRY_ERROR_CODES.unauthorized, `${msg}: unauthorized`);
  if (s === 403) return new ClipError('failed_precondition', REGISTRY_ERROR_CODES.denied, `${msg}: access denied`);
  if (s === 429 || s >= 500) return unavailable(`${msg} after retries`);
  if (s === 400 || s === 413 || s === 416) return new ClipError('invalid_argument', REGISTRY_ERROR_CODES.rejected, `${msg}: rejected by the registry`);
  if (s === 405) return new ClipError('unimplemented', REGISTRY_ERROR_CODES.unexpectedStatus, `${msg}: not supported by the registry`);
  return new ClipError('failed_precondition', REGISTRY_ERROR_CODES.unexpectedStatus, `${msg}: unexpected status`);
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
