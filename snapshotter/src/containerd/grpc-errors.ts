/** Map gRPC status codes from containerd's API back to ClipError kinds (containerd's errdefs). */
import { status as Status } from '@grpc/grpc-js';
import { ClipError, type CodeOf, type ErrorKind } from '../errors/index.js';

/** Stable codes for failures reported by containerd, one per kind. */
export const CONTAINERD_ERROR_CODES: { readonly [K in ErrorKind]: CodeOf<K> } = {
  not_found: 'CLIP_CONTAINERD_NOT_FOUND',
  already_exists: 'CLIP_CONTAINERD_ALREADY_EXISTS',
  failed_precondition: 'CLIP_CONTAINERD_FAILED_PRECONDITION',
  invalid_argument: 'CLIP_CONTAINERD_INVALID_ARGUMENT',
  unavailable: 'CLIP_CONTAINERD_UNAVAILABLE',
  data_corrupt: 'CLIP_CONTAINERD_DATA_LOSS',
  unimplemented: 'CLIP_CONTAINERD_UNIMPLEMENTED',
  internal: 'CLIP_CONTAINERD_INTERNAL',
};

/** The ClipError kind for a gRPC status code, following containerd's errdefs.FromGRPC. */
export function kindOfGrpcCode(code: number | undefined): ErrorKind {
  switch (code) {
    case Status.NOT_FOUND:
      return 'not_found';
    case Status.ALREADY_EXISTS:
      return 'already_exists';
    case Status.FAILED_PRECONDITION:
      return 'failed_precondition';
    case Status.INVALID_ARGUMENT:
    case Status.OUT_OF_RANGE:
      return 'invalid_argument';
    // containerd's errdefs treats a cancelled or timed-out call as something to retry later.
    case Status.UNAVAILABLE:
    case Status.DEADLINE_EXCEEDED:
    case Status.CANCELLED:
    case Status.RESOURCE_EXHAUSTED:
      return 'unavailable';
    case Status.UNIMPLEMENTED:
      return 'unimplemented';
    case Status.DATA_LOSS:
      return 'data_corrupt';
    default:
      return 'internal';
  }
}

/** Wrap an error from a containerd call as a ClipError naming the operation (`what`). */
export function fromGrpcError(err: unknown, what: string): ClipError {
  if (err instanceof ClipError) return err;
  const e = err as { code?: unknown; details?: unknown; message?: unknown };
  const code = typeof e.code === 'number' ? e.code : undefined;
  const kind = kindOfGrpcCode(code);
  const detail = typeof e.details === 'string' && e.details !== '' ? e.details : String(e.message ?? err);
  return new ClipError(kind, CONTAINERD_ERROR_CODES[kind], `containerd ${what}: ${detail}`, { cause: err });
}
