import { status as Status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { findClipError, kindOf, type ErrorKind } from '../errors/index.js';

/** The gRPC code containerd turns back into the same errdefs category. */
export function toGrpcStatus(kind: ErrorKind): Status {
  switch (kind) {
    case 'not_found':
      return Status.NOT_FOUND;
    case 'already_exists':
      return Status.ALREADY_EXISTS;
    case 'failed_precondition':
      return Status.FAILED_PRECONDITION;
    case 'invalid_argument':
      return Status.INVALID_ARGUMENT;
    case 'unavailable':
      return Status.UNAVAILABLE;
    case 'data_corrupt':
      return Status.DATA_LOSS;
    case 'unimplemented':
      return Status.UNIMPLEMENTED;
    case 'internal':
      return Status.INTERNAL;
    default: {
      const never: never = kind;
      return never;
    }
  }
}

/** A grpc-js error for any thrown value, carrying the ClipError code as metadata. */
export function toServiceError(err: unknown): Partial<ServiceError> {
  const metadata = new Metadata();
  const code = findClipError(err)?.code;
  if (code) metadata.set('clip-error-code', code);
  return {
    code: toGrpcStatus(kindOf(err)),
    details: err instanceof Error ? err.message : String(err),
    metadata,
  };
}
