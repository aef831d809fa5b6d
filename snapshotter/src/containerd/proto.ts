/**
 * Loads the containerd API subset (our own .proto files) and builds grpc-js client constructors.
 * Parsing the .proto text took 20-50 ms of every `clip-snapshotter pull` before its first call to
 * containerd (issue 15, pull latency); `make build` writes the parsed definitions as JSON beside the
 * compiled module, which is used when it was made from the same .proto text, else they are parsed.
 * The client constructors are made straight from the protobufjs types, one service when first
 * used: proto-loader's package definition also encodes a descriptor of every message and file for
 * reflection, which grpc-js clients never read (12-47 ms of the pull command's CPU in profiles).
 * Building the protobufjs types from that JSON (`Root.fromJSON`, 19-27 ms) and generating each
 * message type's encoder, decoder and converters at first use (`Type.setup`, 29-87 ms) were then
 * still on the pull's critical path, so `make build` also writes those functions as static code
 * (protobufjs-cli's static module, bundled into the pull command), used when made from the same
 * .proto text; the JSON's types remain the fallback.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** The directory of the .proto files (an include path) and the files, relative to it. */
export const PROTO_DIR = fileURLToPath(new URL('../../../../snapshotter/proto/', import.meta.url));
export const FILES = [
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
/** The static encoders/decoders (CommonJS), written by `make build` beside the JSON. */
export const STATIC_MODULE_URL = new URL('../containerd/containerd-api.pb.cjs', import.meta.url);
/**
 * The key the build adds to the static module's exports for what pbjs does not write: the sources
 * digest and each method's types and streaming. `$` is not a proto identifier, so no package clashes.
 */
export const STATIC_META_KEY = '$clip';
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

/** One message type of the static module: protobufjs's generated functions, without reflection. */
interface StaticType {
  encode(message: unknown): { finish(): Uint8Array };
  decode(bytes: Uint8Array): unknown;
  fromObject(object: Record<string, unknown>, depth?: number): unknown;
  toObject(message: unknown, options: protobuf.IConversionOptions): unknown;
}

/** A method as the build lists it: name, request and response types' full names, streaming. */
export type StaticMethod = [name: string, request: string, response: string, requestStream: boolean, responseStream: boolean];

/** What the build adds to the static module (under STATIC_META_KEY). */
export interface StaticMeta {
  sources: string;
  services: Record<string, StaticMethod[]>;
}

/** The static module's exports: nested namespaces down to the message types, and the build's meta. */
type StaticModule = Record<string, unknown>;

type ServiceName = keyof ContainerdServices;
let root: protobuf.Root | undefined;
/** The static module in use: undefined until looked for, null when there is none that matches. */
let staticModule: StaticModule | null | undefined;
/** The static module bundled into the pull command, handed over by the bundle's entry. */
let bundledStatic: unknown;
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

/** The static modules' Any types that already pack the JSON form. */
const packsJsonAny = new WeakSet<StaticType>();

/**
 * The static module `m` when the build made it from the .proto files as they are (sources digest),
 * else undefined. Any message given as `{'@type': ...}` (proto3's JSON form) is packed as
 * protobufjs's reflection does it (which looks the named type up, and the static code cannot).
 */
export function staticModuleOf(m: unknown): StaticModule | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const meta = (m as Record<string, unknown>)[STATIC_META_KEY] as StaticMeta | undefined;
  if (meta?.sources !== protoSourcesDigest()) return undefined;
  const anyType = staticType(m as StaticModule, 'google.protobuf.Any');
  if (anyType && !packsJsonAny.has(anyType)) {
    const plain = anyType.fromObject.bind(anyType);
    anyType.fromObject = (object: Record<string, unknown>, depth?: number): unknown => {
      if (object === null || typeof object !== 'object' || !object['@type']) return plain(object, depth);
      const packed = reflectionRoot().lookupType('google.protobuf.Any').fromObject(object) as unknown as Record<string, unknown>;
      return plain({ type_url: packed['type_url'], value: packed['value'] }, depth);
    };
    packsJsonAny.add(anyType);
  }
  return m as StaticModule;
}

/** Hand over the static module bundled into the pull command (its entry does, before any call). */
export function useBundledStaticModule(m: unknown): void {
  bundledStatic = m;
  staticModule = undefined;
}

/** The static module: bundled, else the build's beside this file; undefined if none matches. */
function currentStaticModule(): StaticModule | undefined {
  if (staticModule === undefined) {
    let m = bundledStatic;
    if (m === undefined) {
      try {
        m = requireHere(fileURLToPath(STATIC_MODULE_URL));
      } catch {
        m = undefined; // not built (a bare `tsc`, or no protobufjs-cli): the JSON's types instead
      }
    }
    staticModule = staticModuleOf(m) ?? null;
  }
  return staticModule ?? undefined;
}

/** The message type `fullName` of a static module, if it has it. */
function staticType(m: StaticModule, fullName: string): StaticType | undefined {
  let at: unknown = m;
  for (const part of fullName.split('.')) {
    if (typeof at !== 'object' && typeof at !== 'function') return undefined;
    at = at === null ? undefined : (at as Record<string, unknown>)[part];
  }
  if (typeof at !== 'function') return undefined; // a generated type is a class
  const t = at as unknown as Record<string, unknown>;
  return typeof t['decode'] === 'function' ? (t as unknown as StaticType) : undefined;
}

/**
 * grpc-js's definition of one service from a static module (as `serviceDefinition` makes it from
 * protobufjs types), or undefined when the module lacks the service or one of its types.
 */
export function staticServiceDefinition(m: StaticModule, fullName: string): grpc.ServiceDefinition | undefined {
  const methods = (m[STATIC_META_KEY] as StaticMeta).services[fullName];
  if (!methods) return undefined;
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, reqName, resName, requestStream, responseStream] of methods) {
    const req = staticType(m, reqName);
    const res = staticType(m, resName);
    if (!req || !res) return undefined;
    def[name] = {
      path: `/${fullName}/${name}`,
      requestStream,
      responseStream,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
      originalName: name.charAt(0).toLowerCase() + name.slice(1),
    };
  }
  return def as grpc.ServiceDefinition;
}

/** The methods of every service in FILES, for the static module (build time). */
export function staticMeta(): StaticMeta {
  const services: Record<string, StaticMethod[]> = {};
  const r = parsedRoot();
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Service) {
        services[o.fullName.slice(1)] = o.methodsArray.map((m) => {
          m.resolve();
          const req = m.resolvedRequestType;
          const res = m.resolvedResponseType;
          if (!req || !res) throw new Error(`containerd proto: ${o.fullName}.${m.name} has unresolved types`);
          return [m.name, req.fullName.slice(1), res.fullName.slice(1), m.requestStream === true, m.responseStream === true];
        });
      } else if (o instanceof protobuf.Namespace) walk(o);
    }
  };
  walk(r);
  return { sources: protoSourcesDigest(), services };
}

/** The protobufjs types (the JSON's, else parsed): the fallback, and for what static code cannot do. */
function reflectionRoot(): protobuf.Root {
  root ??= prebuiltRoot() ?? parsedRoot();
  return root;
}

const serializer = (t: StaticType) => (v: unknown): Buffer => Buffer.from(t.encode(t.fromObject(v as Record<string, unknown>)).finish());
const deserializer = (t: StaticType) => (b: Buffer): unknown => t.toObject(t.decode(b), TO_OBJECT);

/** The client constructor of one containerd service, made when first asked for. */
export function containerdService(name: ServiceName): grpc.ServiceClientConstructor {
  let ctor = constructors.get(name);
  if (!ctor) {
    const m = currentStaticModule();
    const def = (m && staticServiceDefinition(m, SERVICES[name])) ?? serviceDefinition(reflectionRoot(), SERVICES[name]);
    ctor = grpc.makeGenericClientConstructor(def, name);
    constructors.set(name, ctor);
  }
  return ctor;
}
