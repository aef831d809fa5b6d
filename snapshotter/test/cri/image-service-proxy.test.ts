/**
 * The CRI image-service proxy against a fake containerd (a gRPC server on a unix socket that records
 * the raw bytes it gets): every call relayed byte for byte with its metadata and status, streams
 * relayed, and each PullImage's credentials kept for its repository, never logged.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { pino } from 'pino';
import t from 'tap';
import { CapturedCredentials, IMAGE_SERVICE_METHODS, methodPath, startCriProxy } from '../../src/cri/index.js';
import { createLogger } from '../../src/log/index.js';

const PROTO = fileURLToPath(new URL('../../../../snapshotter/proto/cri/pull-image.proto', import.meta.url));
const identity = (b: Buffer): Buffer => b;

function pullRequestBytes(image: string, auth: Record<string, string>): Buffer {
  const def = protoLoader.loadSync(PROTO, { keepCase: true });
  const m = (def['runtime.v1.ImageService'] as Record<string, protoLoader.MethodDefinition<object, object>>)['PullImage']!;
  return m.requestSerialize({ image: { image }, auth });
}

interface Seen {
  method: string;
  bytes: Buffer;
  metadata: grpc.Metadata;
}

async function fakeContainerd(socket: string, seen: Seen[]): Promise<grpc.Server> {
  const server = new grpc.Server();
  const def: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const impl: grpc.UntypedServiceImplementation = {};
  for (const m of IMAGE_SERVICE_METHODS) {
    def[m.name] = { path: methodPath(m.name), requestStream: false, responseStream: m.responseStream, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
    impl[m.name] = m.responseStream
      ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          seen.push({ method: m.name, bytes: call.request, metadata: call.metadata });
          call.write(Buffer.from('one'));
          call.write(Buffer.from('two'));
          call.end();
        }
      : (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
          seen.push({ method: m.name, bytes: call.request, metadata: call.metadata });
          if (m.name === 'RemoveImage') return done({ code: grpc.status.NOT_FOUND, details: 'no such image' });
          done(null, Buffer.concat([Buffer.from(`${m.name}:`), call.request]));
        };
  }
  server.addService(def, impl);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

t.test('relays every ImageService call unchanged and keeps pull credentials', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-cri-'));
  const seen: Seen[] = [];
  const upstream = await fakeContainerd(join(dir, 'containerd.sock'), seen);
  const logLines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  const credentials = new CapturedCredentials({ ttlMs: 60_000, maxEntries: 10, maxBytes: 4096 });
  const proxy = await startCriProxy({ listen: join(dir, 'cri.sock'), containerdAddress: join(dir, 'containerd.sock'), credentials, log });
  const client = new grpc.Client(`unix://${proxy.address}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await proxy.stop();
    upstream.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  t.equal(statSync(proxy.address).mode & 0o777, 0o600, 'the socket is 0600');

  const unary = (name: string, req: Buffer, md = new grpc.Metadata()): Promise<Buffer> =>
    new Promise((resolve, reject) => client.makeUnaryRequest(methodPath(name), identity, identity, req, md, (err, v) => (err ? reject(err) : resolve(v!))));

  const secret = 's3cr3t-pa55';
  const pull = pullRequestBytes('127.0.0.1:5000/team/app:v1', { username: 'kube', password: secret });
  const md = new grpc.Metadata();
  md.set('x-test', 'kept');
  const res = await unary('PullImage', pull, md);
  t.ok(res.equals(Buffer.concat([Buffer.from('PullImage:'), pull])), 'the response comes back unchanged');
  t.ok(seen[0]?.bytes.equals(pull), 'containerd got the exact bytes');
  t.same(seen[0]?.metadata.get('x-test'), ['kept'], 'metadata relayed');
  t.same(await credentials.get('127.0.0.1:5000', 'team/app'), { type: 'basic', username: 'kube', password: secret });
  t.notOk(logLines.join('').includes(secret), 'the secret is not logged');
  t.match(logLines.join(''), /CRI pull credentials kept/);

  for (const name of ['ListImages', 'ImageStatus', 'ImageFsInfo']) {
    const body = Buffer.from([0x0a, 0x02, 0x68, 0x69]);
    t.ok((await unary(name, body)).equals(Buffer.concat([Buffer.from(`${name}:`), body])), `${name} relayed`);
  }
  const err = await unary('RemoveImage', Buffer.alloc(0)).catch((e: grpc.ServiceError) => e);
  t.equal((err as grpc.ServiceError).code, grpc.status.NOT_FOUND, 'an error status is relayed');
  t.match((err as grpc.ServiceError).details, 'no such image');

  const chunks: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = client.makeServerStreamRequest(methodPath('StreamImages'), identity, identity, Buffer.alloc(0), new grpc.Metadata());
    s.on('data', (c: Buffer) => chunks.push(c.toString()));
    s.on('error', reject);
    s.on('end', resolve);
  });
  t.same(chunks, ['one', 'two'], 'a server stream is relayed');

  const garbage = Buffer.from([0xff, 0xff, 0xff]);
  const before = seen.length;
  await unary('PullImage', garbage);
  t.ok(seen[before]?.bytes.equals(garbage), 'a request that does not decode is still forwarded');
  const anonymous = pullRequestBytes('127.0.0.1:5000/team/open:v1', {});
  await unary('PullImage', anonymous);
  t.equal(await credentials.get('127.0.0.1:5000', 'team/open'), undefined, 'an anonymous pull keeps nothing');
});

t.test('containerd down: the kubelet gets UNAVAILABLE, not a hang', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'clip-cri-'));
  const credentials = new CapturedCredentials({ ttlMs: 60_000, maxEntries: 10, maxBytes: 4096 });
  const proxy = await startCriProxy({ listen: join(dir, 'cri.sock'), containerdAddress: join(dir, 'absent.sock'), credentials, log: createLogger('silent') });
  const client = new grpc.Client(`unix://${proxy.address}`, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    await proxy.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const err = await new Promise<grpc.ServiceError>((resolve) =>
    client.makeUnaryRequest(methodPath('ListImages'), identity, identity, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (e) => resolve(e!)),
  );
  t.equal(err.code, grpc.status.UNAVAILABLE);
});
