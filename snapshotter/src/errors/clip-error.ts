/**
 * The one error type of clip-snapshotter. Every failure carries a `kind` (mirroring containerd's
 * errdefs categories) and a stable `code`; the kind is translated exactly twice: to gRPC status
 * codes in `service/` and to errno values in `fuse/`.
 */

/** The categories callers branch on; mirrors containerd's errdefs. */
export type ErrorKind =
  | 'not_found'
  | 'already_exists'
  | 'failed_precondition'
  | 'invalid_argument'
  | 'unavailable'
  | 'data_corrupt'
  | 'unimplemented'
  | 'internal';

/** An error with a category and a stable, documented code (e.g. `CLIP_SNAPSHOT_NOT_FOUND`). */
export class ClipError extends Error {
  readonly kind: ErrorKind;
  readonly code: string;

  constructor(kind: ErrorKind, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClipError';
    this.kind = kind;
    this.code = code;
  }
}

/** Shorthand constructors so call sites read as the category they raise. */
export const notFound = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('not_found', code, `${message}: not found`, { cause });
export const alreadyExists = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('already_exists', code, `${message}: already exists`, { cause });
export const failedPrecondition = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('failed_precondition', code, `${message}: failed precondition`, { cause });
export const invalidArgument = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('invalid_argument', code, `${message}: invalid argument`, { cause });
export const unavailable = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('unavailable', code, `${message}: unavailable`, { cause });
export const dataCorrupt = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('data_corrupt', code, `${message}: data corrupt`, { cause });
export const internal = (code: string, message: string, cause?: unknown): ClipError =>
  new ClipError('internal', code, message, { cause });

/** The first ClipError on the `cause` chain, if any. */
export function findClipError(err: unknown): ClipError | undefined {
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 16; depth++) {
    if (cur instanceof ClipError) return cur;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The category of an error, walking its cause chain; plain errors are `internal`. */
export function kindOf(err: unknown): ErrorKind {
  return findClipError(err)?.kind ?? 'internal';
}

/** True when the error (or something it wraps) has the given kind. */
export function isKind(err: unknown, kind: ErrorKind): boolean {
  return kindOf(err) === kind;
}

/** Wrap an error with more context while keeping its category and code. */
export function wrap(err: unknown, message: string): ClipError {
  const found = findClipError(err);
  const detail = err instanceof Error ? err.message : String(err);
  return new ClipError(found?.kind ?? 'internal', found?.code ?? 'CLIP_INTERNAL', `${message}: ${detail}`, {
    cause: err,
  });
}

/** A readable message for any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
