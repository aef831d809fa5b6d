/**
 * The CRI image-service proxy: a unix socket the kubelet is pointed at (`--image-service-endpoint`)
 * that relays every `runtime.v1.ImageService` call to containerd's CRI socket byte for byte —
 * requests, responses, metadata, deadlines, statuses — and, for each PullImage, keeps the pull's
 * AuthConfig for the image's registry and repository (CapturedCredentials) before forwarding it,
 * because the snapshotter prepares the image's layers while the pull is still running. Secrets
 * never reach a log line: only the registry, repository and kind of credential are logged.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { messageOf, unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { parseReference } from '../registry/index.js';
import { credentialOf } from './auth-config.js';
import type { CapturedCredentials } from './captured-credentials.js';
import { IMAGE_SERVICE_METHODS, methodPath } from './image-service-methods.js';
import { decodePullImage } from './pull-request.js';

export interface CriProxyOptions {
  /** The socket to listen on (mode 0600). */
  listen: string;
  /** containerd's CRI socket (containerd's own gRPC socket). */
  containerdAddress: string;
  credentials: CapturedCredentials;
  log: Logger;
}

/** A running proxy. */
export interface CriProxy {
  address: string;
  stop(): Promise<void>;
}

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const identity = (b: Buffer): Buffer => b;

/** Start the proxy; calls are forwarded over one channel to containerd, opened lazily. */
export async function startCriProxy(opts: CriProxyOptions): Promise<CriProxy> {
  const { log } = opts;
  const upstream = new grpc.Client(`unix://${opts.containerdAddress}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const m of IMAGE_SERVICE_METHODS) {
    const path = methodPath(m.name);
    definition[m.name] = {
      path, requestStream: false, responseStream: m.responseStream,
      requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity,
    };
    handlers[m.name] = m.responseStream
      ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => relayStream(upstream, path, call)
      : (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
          if (m.name === 'PullImage') capture(call.request, opts.credentials, log);
          relayUnary(upstream, path, call, done);
        };
  }
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE_BYTES, 'grpc.max_send_message_length': MAX_MESSAGE_BYTES });
  server.addService(definition, handlers);
  await mkdir(dirname(opts.listen), { recursive: true, mode: 0o711 });
  await rm(opts.listen, { force: true });
  // The socket carries pull secrets: restricted before anyone can connect (0177 umask at bind).
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${opts.listen}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(unavailable('CLIP_LISTEN', `CRI proxy: listen on ${opts.listen}: ${err.message}`, err)) : resolve(),
      ),
    );
  } finally {
    process.umask(old);
  }
  await chmod(opts.listen, 0o600);
  log.info({ address: opts.listen, containerd: opts.containerdAddress }, 'CRI image-service proxy listening');
  return {
    address: opts.listen,
    stop: async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 5_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      upstream.close();
    },
  };
}

/** Keep the pull's credentials for its repository; a request that does not decode is forwarded as is. */
function capture(request: Buffer, store: CapturedCredentials, log: Logger): void {
  try {
    const { image, auth } = decodePullImage(request);
    const credential = credentialOf(auth);
    if (!credential) return;
    const ref = parseReference(image);
    const kept = store.remember(ref.domain, ref.repository, credential);
    log.info({ registry: ref.domain, repository: ref.repository, credential: credential.type, kept }, kept ? 'CRI pull credentials kept for lazy reads' : 'CRI pull credentials too large to keep');
  } catch (err) {
    // containerd answers the pull itself; clip only misses credentials it could not read.
    log.warn({ err: messageOf(err) }, 'CRI PullImage credentials not captured');
  }
}

function forwardOptions(call: { getDeadline(): grpc.Deadline }): grpc.CallOptions {
  const deadline = call.getDeadline();
  return deadline === Infinity ? {} : { deadline };
}

function relayUnary(upstream: grpc.Client, path: string, call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>): void {
  const out = upstream.makeUnaryRequest(path, identity, identity, call.request, call.metadata.clone(), forwardOptions(call), (err, value) => {
    if (err) done(err);
    else done(null, value);
  });
  call.on('cancelled', () => out.cancel());
}

function relayStream(upstream: grpc.Client, path: string, call: grpc.ServerWritableStream<Buffer, Buffer>): void {
  const out = upstream.makeServerStreamRequest(path, identity, identity, call.request, call.metadata.clone(), forwardOptions(call));
  call.on('cancelled', () => out.cancel());
  out.on('data', (chunk: Buffer) => {
    if (!call.write(chunk)) {
      out.pause();
      call.once('drain', () => out.resume());
    }
  });
  out.on('error', (err) => call.emit('error', err));
  out.on('end', () => call.end());
}
