import t from 'tap';
import { status } from '@grpc/grpc-js';
import { toGrpcStatus, toServiceError } from '../../src/service/index.js';
import { ClipError, failedPrecondition, notFound, wrap, type ErrorKind } from '../../src/errors/index.js';

t.test('every kind maps to containerd’s code', async (t) => {
  // A Record over the union: a kind added to ErrorKind without a row here does not compile.
  const expected: Record<ErrorKind, status> = {
    not_found: status.NOT_FOUND,
    already_exists: status.ALREADY_EXISTS,
    failed_precondition: status.FAILED_PRECONDITION,
    invalid_argument: status.INVALID_ARGUMENT,
    unavailable: status.UNAVAILABLE,
    data_corrupt: status.DATA_LOSS,
    unimplemented: status.UNIMPLEMENTED,
    internal: status.INTERNAL,
  };
  for (const [kind, code] of Object.entries(expected) as Array<[ErrorKind, status]>) {
    t.equal(toGrpcStatus(kind), code, kind);
    t.equal(toServiceError(new ClipError(kind, 'CLIP_TEST', kind)).code, code, `a ClipError of kind ${kind} leaves as ${code}`);
  }
});

t.test('wrapped errors keep their category; plain errors are internal', async (t) => {
  const e = toServiceError(wrap(notFound('CLIP_X', 'snapshot "k"'), 'stat'));
  t.equal(e.code, status.NOT_FOUND);
  t.match(e.details, /stat: snapshot "k": not found/);
  t.same(e.metadata?.get('clip-error-code'), ['CLIP_X']);
  t.equal(toServiceError(new Error('boom')).code, status.INTERNAL);
  t.equal(toServiceError(new Error('outer', { cause: failedPrecondition('C', 'x') })).code, status.FAILED_PRECONDITION);
});
