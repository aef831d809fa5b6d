import t from 'tap';
import { status } from '@grpc/grpc-js';
import { toGrpcStatus, toServiceError } from '../../src/service/index.js';
import { failedPrecondition, notFound, wrap } from '../../src/errors/index.js';

t.test('every kind maps to containerd’s code', async (t) => {
  t.equal(toGrpcStatus('not_found'), status.NOT_FOUND);
  t.equal(toGrpcStatus('already_exists'), status.ALREADY_EXISTS);
  t.equal(toGrpcStatus('failed_precondition'), status.FAILED_PRECONDITION);
  t.equal(toGrpcStatus('invalid_argument'), status.INVALID_ARGUMENT);
  t.equal(toGrpcStatus('unavailable'), status.UNAVAILABLE);
  t.equal(toGrpcStatus('internal'), status.INTERNAL);
});

t.test('wrapped errors keep their category; plain errors are internal', async (t) => {
  const e = toServiceError(wrap(notFound('CLIP_X', 'snapshot "k"'), 'stat'));
  t.equal(e.code, status.NOT_FOUND);
  t.match(e.details, /stat: snapshot "k": not found/);
  t.same(e.metadata?.get('clip-error-code'), ['CLIP_X']);
  t.equal(toServiceError(new Error('boom')).code, status.INTERNAL);
  t.equal(toServiceError(new Error('outer', { cause: failedPrecondition('C', 'x') })).code, status.FAILED_PRECONDITION);
});
