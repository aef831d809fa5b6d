/**
 * Loads the containerd API subset (our own .proto files) and builds grpc-js client constructors.
 * Parsing the .proto text took 20-50 ms of every `clip-snapshotter pull` before its first call to
 * containerd (issue 15, pull latency); `make build` writes the parsed definitions as JSON beside the
 * compiled module, which is used when it was made from the same .proto text, else they are parsed.
 * The client constructors are made straight from the protobufjs types, one service when first
 * used: proto-loader's package definition also encodes a descriptor of every message and file for
 * reflection, which grpc-js clients never read (12-47 ms of the pull command's CPU in profiles).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

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
/** How responses become objects: as proto-loader makes them with OPTIONS. */
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: Number, defaults: true };
/** Each service's full name. */
const SERVICES = {
  Content: 'containerd.services.content.v1.Content',
  Images: 'containerd.services.images.v1.Images',
  Leases: 'containerd.services.leases.v1.Leases',
  Diff: 'containerd.services.diff.v1.Diff',
  Snapshots: 'containerd.services.snapshots.v1.Snapshots',
} as const;

/** One grpc-js client constructor per containerd service this project calls. */
export interface ContainerdServices {
  Content: grpc.ServiceClientConstructor;
  Images: grpc.ServiceClientConstructor;
  Leases: grpc.ServiceClientConstructor;
  Diff: grpc.ServiceClientConstructor;
  Snapshots: grpc.ServiceClientConstructor;
}

/** The JSON file's shape: the protobufjs root of FILES and the digest of the text it was parsed from. */
interface Descriptor {
  sources: string;
  root: protobuf.INamespace;
}

type ServiceName = keyof ContainerdServices;
let root: protobuf.Root | undefined;
const constructors = new Map<ServiceName, grpc.ServiceClientConstructor>();

/** sha256 over the .proto files' names and text: which sources a descriptor was made from. */
export function protoSourcesDigest(): string {
  const h = createHash('sha256');
  for (const f of FILES) h.update(`${f}\n`).update(readFileSync(`${PROTO_DIR}${f}`)).update('\n');
  return h.digest('hex');
}

/**
 * proto-loader, loaded only to parse the .proto files (build time, tests, a bare `tsc`): evaluating
 * it cost every pull command 7-14 ms of start-up in a profile, for a parse the build already made.
 */
const requireHere = (id: string): unknown => createRequire(import.meta.url)(id);

/** proto-loader's definitions parsed from the .proto files (the reference the tests compare with). */
export function parsedDefinition(): protoLoader.PackageDefinition {
  return (requireHere('@grpc/proto-loader') as typeof protoLoader).loadSync(FILES, { includeDirs: [PROTO_DIR], ...OPTIONS });
}

function parsedRoot(): protobuf.Root {
  const util = requireHere('@grpc/proto-loader/build/src/util.js') as {
    loadProtosWithOptionsSync(files: string[], o: protoLoader.Options): protobuf.Root;
  };
  return util.loadProtosWithOptionsSync(FILES, { includeDirs: [PROTO_DIR], ...OPTIONS });
}

/** The protobufjs root from the build's JSON when it matches the .proto files; undefined otherwise. */
export function prebuiltRoot(url: URL = DESCRIPTOR_URL): protobuf.Root | undefined {
  let d: Descriptor;
  try {
    d = JSON.parse(readFileSync(url, 'utf8')) as Descriptor;
  } catch {
    return undefined; // not built (a bare `tsc`) or unreadable: parse instead
  }
  if (d.sources !== protoSourcesDigest()) return undefined;
  return protobuf.Root.fromJSON(d.root);
}

/**
 * The JSON `prebuiltRoot` reads (build time): proto-loader's own parse of FILES, so the types are
 * the ones `loadSync` makes, as the protobufjs that proto-loader uses writes them.
 */
export function descriptorJson(): string {
  return JSON.stringify({ sources: protoSourcesDigest(), root: parsedRoot().toJSON() });
}

/**
 * grpc-js's definition of one service of `r`: each method's path, streaming and (de)serializers,
 * which turn objects into messages and back as proto-loader's do (`fromObject`/`encode`,
 * `decode`/`toObject` with OPTIONS).
 */
export function serviceDefinition(r: protobuf.Root, fullName: string): grpc.ServiceDefinition {
  const service = r.lookupService(fullName);
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType;
    const res = m.resolvedResponseType;
    if (!req || !res) throw new Error(`containerd proto: ${fullName}.${m.name} has unresolved types`);
    def[m.name] = {
      path: `/${fullName}/${m.name}`,
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
      originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
    };
  }
  return def as grpc.ServiceDefinition;
}

const serializer = (t: protobuf.Type) => (v: unknown): Buffer => Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish());
const deserializer = (t: protobuf.Type) => (b: Buffer): unknown => t.toObject(t.decode(b), TO_OBJECT);

/** The client constructor of one containerd service, made when first asked for. */
export function containerdService(name: ServiceName): grpc.ServiceClientConstructor {
  let ctor = constructors.get(name);
  if (!ctor) {
    root ??= prebuiltRoot() ?? parsedRoot();
    ctor = grpc.makeGenericClientConstructor(serviceDefinition(root, SERVICES[name]), name);
    constructors.set(name, ctor);
  }
  return ctor;
}
