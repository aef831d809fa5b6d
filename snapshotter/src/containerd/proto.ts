/** Loads the containerd API subset (our own .proto files) and builds grpc-js client constructors. */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_DIR = fileURLToPath(new URL('../../../../snapshotter/proto/', import.meta.url));
const FILES = [
  'containerd/types.proto',
  'containerd/content.proto',
  'containerd/images.proto',
  'containerd/leases.proto',
  'containerd/diff.proto',
  'snapshots.proto',
];

/** One grpc-js client constructor per containerd service this project calls. */
export interface ContainerdServices {
  Content: grpc.ServiceClientConstructor;
  Images: grpc.ServiceClientConstructor;
  Leases: grpc.ServiceClientConstructor;
  Diff: grpc.ServiceClientConstructor;
  Snapshots: grpc.ServiceClientConstructor;
}

type V1<K extends string> = { [P in K]: { v1: Record<string, grpc.ServiceClientConstructor> } };

let cached: ContainerdServices | undefined;

function pick(pkg: Record<string, grpc.ServiceClientConstructor>, name: string): grpc.ServiceClientConstructor {
  const ctor = pkg[name];
  if (!ctor) throw new Error(`containerd proto: service ${name} missing`);
  return ctor;
}

/** Load (once) and return the service constructors. */
export function containerdServices(): ContainerdServices {
  if (cached) return cached;
  const def = protoLoader.loadSync(FILES, {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: Number,
    enums: Number,
    defaults: true,
  });
  const root = grpc.loadPackageDefinition(def) as unknown as {
    containerd: { services: V1<'content' | 'images' | 'leases' | 'diff' | 'snapshots'> };
  };
  const s = root.containerd.services;
  cached = {
    Content: pick(s.content.v1, 'Content'),
    Images: pick(s.images.v1, 'Images'),
    Leases: pick(s.leases.v1, 'Leases'),
    Diff: pick(s.diff.v1, 'Diff'),
    Snapshots: pick(s.snapshots.v1, 'Snapshots'),
  };
  return cached;
}
