/**
 * The one error type of clip-snapshotter. Every failure carries a `kind` (mirroring containerd's
 * errdefs categories) and a stable `code`; the kind is translated exactly twice: to gRPC status
 * codes in `service/` and to errno values in `fuse/`.
 */
import type { CLIP_ERROR_KINDS, ClipErrorCode, CodeOf } from './codes.js';
import type { ErrorKind } from './kinds.js';

export type { ErrorKind };

/** An error with a category and a stable, documented code (e.g. `CLIP_SNAPSHOT_NOT_FOUND`). */
export class ClipError<C extends ClipErrorCode = ClipErrorCode> extends Error {
  readonly kind: ErrorKind;
  readonly code: C;

  /** `kind` must be the one `CLIP_ERROR_KINDS` gives `code`. */
  constructor(kind: (typeof CLIP_ERROR_KINDS)[C], code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClipError';
    this.kind = kind;
    this.code = code;
  }
}

/** Shorthand constructors so call sites read as the category they raise. */
export const notFound = (code: CodeOf<'not_found'>, message: string, cause?: unknown): ClipError =>
  new ClipError('not_found', code, `${message}: not found`, { cause });
export const alreadyExists = (code: CodeOf<'already_exists'>, message: string, cause?: unknown): ClipError =>
  new ClipError('already_exists', code, `${message}: already exists`, { cause });
export const failedPrecondition = (code: CodeOf<'failed_precondition'>, message: string, cause?: unknown): ClipError =>
  new ClipError('failed_precondition', code, `${message}: failed precondition`, { cause });
export const invalidArgument = (code: CodeOf<'invalid_argument'>, message: string, cause?: unknown): ClipError =>
  new ClipError('invalid_argument', code, `${message}: invalid argument`, { cause });
export const unavailable = (code: CodeOf<'unavailable'>, message: string, cause?: unknown): ClipError =>
  new ClipError('unavailable', code, `${message}: unavailable`, { cause });
export const dataCorrupt = (code: CodeOf<'data_corrupt'>, message: string, cause?: unknown): ClipError =>
  new ClipError('data_corrupt', code, `${message}: data corrupt`, { cause });
export const internal = (code: CodeOf<'internal'>, message: string, cause?: unknown): ClipError =>
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
  return new ClipError<ClipErrorCode>(found?.kind ?? 'internal', found?.code ?? 'CLIP_INTERNAL', `${message}: ${detail}`, {
    cause: err,
  });
}

/** A readable message for any thrown value. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
