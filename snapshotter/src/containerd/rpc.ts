/**
 * The call plumbing under ContainerdClient: one grpc-js client per service on a shared socket,
 * namespace and lease metadata on every call, deadlines, and error mapping.
 */
import * as grpc from '@grpc/grpc-js';
import { containerdService, type ContainerdServices } from './proto.js';
import { fromGrpcError } from './grpc-errors.js';

export type ServiceName = keyof ContainerdServices;
type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type UnaryFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;
type StreamFn = (req: unknown, md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientReadableStream<unknown>;
type DuplexFn = (md: grpc.Metadata, opts: grpc.CallOptions) => grpc.ClientDuplexStream<unknown, unknown>;

const MAX_MESSAGE = 16 * 1024 * 1024;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_receive_message_length': MAX_MESSAGE,
  'grpc.max_send_message_length': MAX_MESSAGE,
  // channelz (grpc-js's introspection service, which nothing here serves) traced every channel's
  // events: ≈ 13 ms of a pull's CPU before its first call in a profile (issue 15, pull latency).
  'grpc.enable_channelz': 0,
};

/** Shared connection to one containerd socket: one channel, a client per service over it. */
export class RpcChannel {
  readonly #clients = new Map<ServiceName, grpc.Client>();
  readonly #target: string;
  #channel: grpc.Channel | undefined;

  constructor(address: string) {
    this.#target = address.startsWith('unix:') ? address : `unix://${address}`;
  }

  client(name: ServiceName): grpc.Client {
    let c = this.#clients.get(name);
    if (!c) {
      const Ctor = containerdService(name);
      this.#channel ??= new grpc.Channel(this.#target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
      c = new Ctor(this.#target, grpc.credentials.createInsecure(), { ...CHANNEL_OPTIONS, channelOverride: this.#channel });
      this.#clients.set(name, c);
    }
    return c;
  }

  close(): void {
    this.#clients.clear();
    this.#channel?.close();
    this.#channel = undefined;
  }
}

/** Calls made in one namespace, optionally under one lease. */
export class Rpc {
  readonly channel: RpcChannel;
  readonly namespace: string;
  readonly lease: string | undefined;
  readonly #timeoutMs: number;

  constructor(channel: RpcChannel, namespace: string, lease: string | undefined, timeoutMs: number) {
    this.channel = channel;
    this.namespace = namespace;
    this.lease = lease;
    this.#timeoutMs = timeoutMs;
  }

  /** The same namespace with a lease attached to every call. */
  withLease(lease: string | undefined): Rpc {
    return new Rpc(this.channel, this.namespace, lease, this.#timeoutMs);
  }

  metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    md.set('containerd-namespace', this.namespace);
    if (this.lease !== undefined) md.set('containerd-lease', this.lease);
    return md;
  }

  #method<T>(service: ServiceName, method: string): T {
    const client = this.channel.client(service) as unknown as Record<string, unknown>;
    const fn = client[method];
    if (typeof fn !== 'function') throw new Error(`containerd client: no method ${service}.${method}`);
    return (fn as (...a: unknown[]) => unknown).bind(client) as T;
  }

  /** A unary call; `what` names the operation in errors. */
  unary<Res>(service: ServiceName, method: string, req: unknown, what: string, timeoutMs = this.#timeoutMs): Promise<Res> {
    const fn = this.#method<UnaryFn>(service, method);
    return new Promise<Res>((resolve, reject) => {
      fn(req, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) reject(fromGrpcError(err, what));
        else resolve(res as Res);
      });
    });
  }

  /** A server-streaming call, collected into an array of messages. */
  async collect<Res>(service: ServiceName, method: string, req: unknown, what: string): Promise<Res[]> {
    const out: Res[] = [];
    for await (const msg of this.stream<Res>(service, method, req, what)) out.push(msg);
    return out;
  }

  /** A server-streaming call as an async iterable; errors are mapped. */
  async *stream<Res>(service: ServiceName, method: string, req: unknown, what: string): AsyncGenerator<Res> {
    const call = this.#method<StreamFn>(service, method)(req, this.metadata(), {});
    try {
      for await (const msg of call) yield msg as Res;
    } catch (err) {
      throw fromGrpcError(err, what);
    } finally {
      call.cancel();
    }
  }

  /** A bidirectional stream (content Write). */
  duplex(service: ServiceName, method: string): grpc.ClientDuplexStream<unknown, unknown> {
    return this.#method<DuplexFn>(service, method)(this.metadata(), {});
  }
}
