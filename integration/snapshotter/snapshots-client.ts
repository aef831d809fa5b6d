/** A small promise client of the Snapshots API for tests that talk to the daemon directly. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const PROTO = fileURLToPath(new URL('../../../snapshotter/proto/snapshots.proto', import.meta.url));

export interface WireInfo {
  name: string;
  parent: string;
  kind: number;
  labels: Record<string, string>;
}
export interface CallError extends Error {
  code: number;
  details: string;
}

/** Snapshots API calls as promises; `list` collects the stream. */
export class SnapshotsClient {
  #c: grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  constructor(socket: string) {
    const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: Number, defaults: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } };
    };
    this.#c = new pkg.containerd.services.snapshots.v1.Snapshots(`unix://${socket}`, grpc.credentials.createInsecure()) as never;
  }
  call<T = Record<string, unknown>>(method: string, req: Record<string, unknown>): Promise<T> {
    return new Promise((resolve, reject) =>
      (this.#c[method] as (r: unknown, o: unknown, cb: (e: unknown, v: T) => void) => void).call(
        this.#c,
        req,
        { deadline: Date.now() + 10_000 },
        (e, v) => (e ? reject(e) : resolve(v)),
      ),
    );
  }
  list(filters: string[] = []): Promise<WireInfo[]> {
    return new Promise((resolve, reject) => {
      const out: WireInfo[] = [];
      const s = (this.#c['List'] as (r: unknown) => grpc.ClientReadableStream<{ info: WireInfo[] }>).call(this.#c, { filters });
      s.on('data', (d: { info: WireInfo[] }) => out.push(...d.info));
      s.on('error', reject);
      s.on('end', () => resolve(out));
    });
  }
  /** The gRPC error code of a failing call (or -1 if it succeeded). */
  async codeOf(method: string, req: Record<string, unknown>): Promise<{ code: number; details: string }> {
    try {
      await this.call(method, req);
      return { code: -1, details: '' };
    } catch (e) {
      return { code: (e as CallError).code, details: (e as CallError).details };
    }
  }
  close(): void {
    this.#c.close();
  }
}
