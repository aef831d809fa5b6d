/**
 * Loads the containerd API subset (our own .proto files) and builds grpc-js client constructors.
 * Parsing the .proto text took 20-50 ms of every `clip-snapshotter pull` before its first call to
 * containerd (issue 15, pull latency); `make build` writes the parsed definitions as JSON beside the
 * compiled module, which is used when it was made from the same .proto text, else they are parsed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
/**
 * The parsed definitions, written by `make build`. Relative to the containerd/ directory from here
 * and from the pull command's bundle in cli/ alike.
 */
export const DESCRIPTOR_URL = new URL('../containerd/containerd-api.json', import.meta.url);
const OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: Number, defaults: true };

/** One grpc-js client constructor per containerd service this project calls. */
export interface ContainerdServices {
  Content: grpc.ServiceClientConstructor;
  Images: grpc.ServiceClientConstructor;
  Leases: grpc.ServiceClientConstructor;
  Diff: grpc.ServiceClientConstructor;
  Snapshots: grpc.ServiceClientConstructor;
}

type V1<K extends string> = { [P in K]: { v1: Record<string, grpc.ServiceClientConstructor> } };

/** The JSON file's shape: the protobufjs root of FILES and the digest of the text it was parsed from. */
interface Descriptor {
  sources: string;
  root: Parameters<typeof protoLoader.fromJSON>[0];
}

let cached: ContainerdServices | undefined;

function pick(pkg: Record<string, grpc.ServiceClientConstructor>, name: string): grpc.ServiceClientConstructor {
  const ctor = pkg[name];
  if (!ctor) throw new Error(`containerd proto: service ${name} missing`);
  return ctor;
}

/** sha256 over the .proto files' names and text: which sources a descriptor was made from. */
export function protoSourcesDigest(): string {
  const h = createHash('sha256');
  for (const f of FILES) h.update(`${f}\n`).update(readFileSync(`${PROTO_DIR}${f}`)).update('\n');
  return h.digest('hex');
}

/** The definitions parsed from the .proto files (what `make build` writes, and the fallback). */
export function parsedDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(FILES, { includeDirs: [PROTO_DIR], ...OPTIONS });
}

/** The definitions from the build's JSON when it matches the .proto files; undefined otherwise. */
export function prebuiltDefinition(url: URL = DESCRIPTOR_URL): protoLoader.PackageDefinition | undefined {
  let d: Descriptor;
  try {
    d = JSON.parse(readFileSync(url, 'utf8')) as Descriptor;
  } catch {
    return undefined; // not built (a bare `tsc`) or unreadable: parse instead
  }
  if (d.sources !== protoSourcesDigest()) return undefined;
  return protoLoader.fromJSON(d.root, OPTIONS);
}

/**
 * The JSON `prebuiltDefinition` reads (build time): proto-loader's own parse of FILES, so the
 * definitions are the ones `loadSync` makes, as the protobufjs that proto-loader uses writes them.
 */
export function descriptorJson(): string {
  const require = createRequire(import.meta.url);
  const util = require('@grpc/proto-loader/build/src/util.js') as {
    loadProtosWithOptionsSync(files: string[], o: protoLoader.Options): { toJSON(): Record<string, unknown> };
  };
  const root = util.loadProtosWithOptionsSync(FILES, { includeDirs: [PROTO_DIR], ...OPTIONS });
  return JSON.stringify({ sources: protoSourcesDigest(), root: root.toJSON() });
}

/** Load (once) and return the service constructors. */
export function containerdServices(): ContainerdServices {
  if (cached) return cached;
  const def = prebuiltDefinition() ?? parsedDefinition();
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
