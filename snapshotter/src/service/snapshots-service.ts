/**
 * The `containerd.services.snapshots.v1.Snapshots` binding: each method decodes its request, calls
 * the snapshotter and maps errors — nothing else.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../log/index.js';
import type { Mount, SnapshotInfo, Snapshotter } from '../snapshots/index.js';
import { findClipError, kindOf } from '../errors/index.js';
import { ATTR_CLIP_SNAPSHOT_KEY, traceRpc, type StartTraces } from '../telemetry/index.js';
import { toGrpcStatus, toServiceError } from './grpc-status.js';

const PROTO = fileURLToPath(new URL('../../../../snapshotter/proto/snapshots.proto', import.meta.url));
const SERVICE = 'containerd.services.snapshots.v1.Snapshots';
/** containerd's own service sends List results in blocks of this many. */
const LIST_BATCH = 100;

interface Timestamp {
  seconds: string | number;
  nanos: number;
}
interface WireInfo {
  name: string;
  parent: string;
  kind: number;
  created_at: Timestamp | null;
  updated_at: Timestamp | null;
  labels: Record<string, string>;
}
type Req = Record<string, unknown> & { key?: string; parent?: string; name?: string; labels?: Record<string, string> };

/** Load the service definition from the bundled .proto. */
export function loadSnapshotsService(): grpc.ServiceDefinition {
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: String, enums: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } };
  };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

const toTimestamp = (ns: bigint): Timestamp => ({ seconds: String(ns / 1_000_000_000n), nanos: Number(ns % 1_000_000_000n) });
const fromTimestamp = (t: Timestamp | null): bigint =>
  t ? BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nanos) : 0n;

function toWireInfo(i: SnapshotInfo): WireInfo {
  return {
    name: i.name,
    parent: i.parent,
    kind: i.kind,
    created_at: toTimestamp(i.createdNs),
    updated_at: toTimestamp(i.updatedNs),
    labels: i.labels,
  };
}

const toWireMounts = (ms: Mount[]) => ms.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }));

/** Adapt one async call to a unary handler that maps errors once. */
function unaryCall<T>(log: Logger, method: string, fn: (req: Req) => Promise<T>, starts?: StartTraces): grpc.handleUnaryCall<Req, T> {
  return (call, callback) => {
    const key = call.request.key ?? call.request.name;
    const attrs = key ? { [ATTR_CLIP_SNAPSHOT_KEY]: key } : {};
    const start = starts ? () => starts.rpcContext(method, call.request) : undefined;
    // The handler's own time (what containerd waited on us): the pull-latency bench subtracts it
    // from the client's view of each RPC to tell containerd's share from the snapshotter's.
    const t0 = performance.now();
    const ms = (): number => Math.round((performance.now() - t0) * 100) / 100;
    traceRpc(SERVICE, method, call.metadata?.getMap(), attrs, () => fn(call.request), grpcCodeOf, start).then(
      (res) => {
        if (log.isLevelEnabled('debug')) log.debug({ method, key, duration_ms: ms() }, 'rpc served');
        callback(null, res);
      },
      (err: unknown) => {
        const e = toServiceError(err);
        log.debug({ method, key, code: e.code, clip_error_code: findClipError(err)?.code, err: e.details, duration_ms: ms() }, 'rpc failed');
        callback(e);
      },
    );
  };
}

/** The handlers for every Snapshots method over one snapshotter. */
export function snapshotsHandlers(s: Snapshotter, log: Logger, starts?: StartTraces): grpc.UntypedServiceImplementation {
  const unary = <T>(l: Logger, method: string, fn: (req: Req) => Promise<T>) => unaryCall(l, method, fn, starts);
  return {
    Prepare: unary(log, 'Prepare', async (r) => ({ mounts: toWireMounts(await s.prepare(r.key ?? '', r.parent ?? '', r.labels ?? {})) })),
    View: unary(log, 'View', async (r) => ({ mounts: toWireMounts(await s.view(r.key ?? '', r.parent ?? '', r.labels ?? {})) })),
    Mounts: unary(log, 'Mounts', async (r) => ({ mounts: toWireMounts(await s.mounts(r.key ?? '')) })),
    Commit: unary(log, 'Commit', async (r) => (await s.commit(r.name ?? '', r.key ?? '', r.labels ?? {}, r.parent ?? ''), {})),
    Remove: unary(log, 'Remove', async (r) => (await s.remove(r.key ?? ''), {})),
    Stat: unary(log, 'Stat', async (r) => ({ info: toWireInfo(await s.stat(r.key ?? '')) })),
    Update: unary(log, 'Update', async (r) => {
      const w = r.info as WireInfo | null;
      const mask = r.update_mask as { paths?: string[] } | null;
      const info: SnapshotInfo = {
        name: w?.name ?? '',
        parent: w?.parent ?? '',
        kind: (w?.kind ?? 0) as SnapshotInfo['kind'],
        createdNs: fromTimestamp(w?.created_at ?? null),
        updatedNs: fromTimestamp(w?.updated_at ?? null),
        labels: w?.labels ?? {},
      };
      return { info: toWireInfo(await s.update(info, mask?.paths ?? [])) };
    }),
    Usage: unary(log, 'Usage', async (r) => {
      const u = await s.usage(r.key ?? '');
      return { size: String(u.size), inodes: String(u.inodes) };
    }),
    Cleanup: unary(log, 'Cleanup', async () => (await s.cleanup(), {})),
    List: (call: grpc.ServerWritableStream<Req, unknown>) => {
      const list = () => s.list((call.request.filters as string[] | undefined) ?? []);
      traceRpc(SERVICE, 'List', call.metadata?.getMap(), {}, list, grpcCodeOf).then(
        (infos) => {
          for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH).map(toWireInfo) });
          call.end();
        },
        (err: unknown) => call.emit('error', toServiceError(err)),
      );
    },
  };
}

const grpcCodeOf = (err: unknown): number => toGrpcStatus(kindOf(err));
