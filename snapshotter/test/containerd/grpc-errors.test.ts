import t from 'tap';
import { status as Status } from '@grpc/grpc-js';
import { CONTAINERD_ERROR_CODES, fromGrpcError, kindOfGrpcCode } from '../../src/containerd/index.js';
import { ClipError, kindOf, notFound } from '../../src/errors/index.js';

t.test('gRPC codes map to containerd errdefs kinds', async (t) => {
  const cases: Array<[number, string]> = [
    [Status.NOT_FOUND, 'not_found'],
    [Status.ALREADY_EXISTS, 'already_exists'],
    [Status.FAILED_PRECONDITION, 'failed_precondition'],
    [Status.INVALID_ARGUMENT, 'invalid_argument'],
    [Status.UNAVAILABLE, 'unavailable'],
    [Status.DEADLINE_EXCEEDED, 'unavailable'],
    [Status.UNIMPLEMENTED, 'unimplemented'],
    [Status.DATA_LOSS, 'data_corrupt'],
    [Status.UNKNOWN, 'internal'],
    [Status.INTERNAL, 'internal'],
  ];
  for (const [code, kind] of cases) t.equal(kindOfGrpcCode(code), kind, `code ${code}`);
  t.equal(kindOfGrpcCode(undefined), 'internal');
});

t.test('fromGrpcError keeps details, names the operation and has a stable code', async (t) => {
  const grpcErr = Object.assign(new Error('5 NOT_FOUND: content digest sha256:abc: not found'), { code: Status.NOT_FOUND, details: 'content digest sha256:abc: not found' });
  const e = fromGrpcError(grpcErr, 'content info sha256:abc');
  t.type(e, ClipError);
  t.equal(e.kind, 'not_found');
  t.equal(e.code, CONTAINERD_ERROR_CODES.not_found);
  t.equal(e.message, 'containerd content info sha256:abc: content digest sha256:abc: not found');
  t.equal(e.cause, grpcErr);
  t.equal(kindOf(e), 'not_found');
});

t.test('errors without a gRPC code are internal; ClipErrors pass through', async (t) => {
  t.equal(fromGrpcError(new Error('boom'), 'x').kind, 'internal');
  const mine = notFound('CLIP_SNAPSHOT_NOT_FOUND', 'thing');
  t.equal(fromGrpcError(mine, 'x'), mine);
});
