import t from 'tap';
import { status } from '@grpc/grpc-js';
import { toGrpcStatus, toServiceError } from '../../src/service/index.js';
import { ClipError, failedPrecondition, notFound, wrap, type CodeOf, type ErrorKind } from '../../src/errors/index.js';

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
  // One real code of each kind (codes are typed: a made-up one does not compile).
  const codeOf: { [K in ErrorKind]: CodeOf<K> } = {
    not_found: 'CLIP_SNAPSHOT_NOT_FOUND',
    already_exists: 'CLIP_KEY_EXISTS',
    failed_precondition: 'CLIP_COMMIT_NOT_ACTIVE',
    invalid_argument: 'CLIP_FILTER_SYNTAX',
    unavailable: 'CLIP_REGISTRY_UNAVAILABLE',
    data_corrupt: 'CLIP_INDEX_CORRUPT',
    unimplemented: 'CLIP_ZRAN_UNAVAILABLE',
    internal: 'CLIP_INTERNAL',
  };
  for (const [kind, code] of Object.entries(expected) as Array<[ErrorKind, status]>) {
    t.equal(toGrpcStatus(kind), code, kind);
    t.equal(toServiceError(new ClipError(kind, codeOf[kind], kind)).code, code, `a ClipError of kind ${kind} leaves as ${code}`);
  }
});

t.test('wrapped errors keep their category; plain errors are internal', async (t) => {
  const e = toServiceError(wrap(notFound('CLIP_SNAPSHOT_NOT_FOUND', 'snapshot "k"'), 'stat'));
  t.equal(e.code, status.NOT_FOUND);
  t.match(e.details, /stat: snapshot "k": not found/);
  t.same(e.metadata?.get('clip-error-code'), ['CLIP_SNAPSHOT_NOT_FOUND']);
  t.equal(toServiceError(new Error('boom')).code, status.INTERNAL);
  t.equal(toServiceError(new Error('outer', { cause: failedPrecondition('CLIP_COMMIT_NOT_ACTIVE', 'x') })).code, status.FAILED_PRECONDITION);
});
