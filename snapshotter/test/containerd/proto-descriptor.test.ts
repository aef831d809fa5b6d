/**
 * Issue 15, deliverable 4 (pull latency): the containerd API definitions `make build` writes as
 * JSON are the ones parsed from the .proto files, and the client definitions made from them
 * straight (without proto-loader's package definition) match proto-loader's — same services,
 * methods, paths, streaming and message encodings — and a JSON made from other .proto text is not
 * used. So do the definitions made from the static encoders/decoders the build also writes.
 */
import t, { type Test } from 'tap';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PackageDefinition } from '@grpc/proto-loader';
import { pbjsAvailable, staticModuleSource } from '../../src/cli/bundle-pull-command.js';
import {
  STATIC_META_KEY,
  STATIC_MODULE_URL,
  descriptorJson,
  parsedDefinition,
  prebuiltRoot,
  protoSourcesDigest,
  serviceDefinition,
  staticModuleOf,
  staticServiceDefinition,
} from '../../src/containerd/proto.js';
import { tempDir } from '../storage/fixtures.js';

// A worktree whose node_modules predate the dev dependency says so instead of failing (`make deps` installs it).
const noPbjs = pbjsAvailable() ? false : 'protobufjs-cli is not installed: run `make deps`';

interface MethodDef {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  originalName?: string;
  requestSerialize(v: unknown): Buffer;
  requestDeserialize(b: Buffer): unknown;
  responseSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): unknown;
}

/** Every method of every service: its wire shape and message descriptors. */
function methods(def: PackageDefinition): Map<string, MethodDef> {
  const out = new Map<string, MethodDef>();
  for (const [name, v] of Object.entries(def)) {
    if ((v as { format?: string }).format !== undefined) continue; // a message or enum type, not a service
    for (const [m, md] of Object.entries(v as Record<string, MethodDef>)) out.set(`${name}.${m}`, md);
  }
  return out;
}

/** A message of each shape the pull sends and gets back: strings, maps, nested, repeated, longs, timestamps, bytes. */
const SAMPLES: unknown[] = [
  {},
  { key: 'k', parent: 'p', labels: { a: 'b', c: '' }, snapshotter: 'clip' },
  { lease: { id: 'x', labels: { l: 'v' }, created_at: { seconds: 5, nanos: 6 } } },
  { mounts: [{ type: 'fuse', source: 's', target: '', options: ['ro', 'x=1'] }] },
  { info: { name: 'n', parent: 'p', kind: 3, labels: { q: 'r' }, created_at: { seconds: 1700000000, nanos: 1 }, updated_at: null } },
  { action: 2, ref: 'r', total: 4096, offset: 1024, data: Buffer.from('abc'), expected: 'sha256:00', labels: { a: 'b' } },
  { image: { name: 'img', labels: {}, target: { media_type: 'm', digest: 'd', size: 123456789012, annotations: { x: 'y' } } } },
  { size: 9007199254740991, inodes: 3 },
  // google.protobuf.Any (Diff.Apply's payloads): as bytes, and in proto3's JSON form, which
  // protobufjs packs by looking the named type up.
  { diff: { digest: 'd', size: 1 }, payloads: { raw: { type_url: 'x/y', value: Buffer.from([1, 2]) } } },
  { payloads: { m: { '@type': 'type.googleapis.com/containerd.types.Mount', type: 'bind', source: '/s', options: ['ro'] } } },
  { payloads: { u: { '@type': 'type.googleapis.com/no.such.Type', type_url: 'kept', value: Buffer.from([3]) } } },
];

/** What `f` returns, or the message it throws. */
function outcome(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    return { threw: (err as Error).message };
  }
}

/** The services of proto-loader's definitions, and their methods. */
function reference(t: Test): { parsed: Map<string, MethodDef>; services: Set<string> } {
  const parsed = methods(parsedDefinition());
  t.ok(parsed.has('containerd.services.leases.v1.Leases.Create'), 'the check sees the services');
  const services = new Set([...parsed.keys()].map((k) => k.slice(0, k.lastIndexOf('.'))));
  t.ok(services.size >= 5, 'content, images, leases, diff, snapshots');
  return { parsed, services };
}

/** `lean`'s methods are proto-loader's (`parsed`), call for call. */
function sameAsProtoLoader(t: Test, lean: Map<string, MethodDef>, parsed: Map<string, MethodDef>): void {
  t.same([...lean.keys()].sort(), [...parsed.keys()].sort(), 'same services and methods');
  for (const [k, p] of parsed) {
    const j = lean.get(k)!;
    t.same({ path: j.path, requestStream: j.requestStream, responseStream: j.responseStream, originalName: j.originalName },
      { path: p.path, requestStream: p.requestStream, responseStream: p.responseStream, originalName: p.originalName }, k);
    // Every sample through both, each way: the same bytes on the wire, the same objects back
    // (fields a message does not have are dropped alike).
    // A sample that does not fit a message (an object where it has a list) must fail alike.
    for (const v of SAMPLES) {
      t.same(outcome(() => j.requestSerialize(v)), outcome(() => p.requestSerialize(v)), `${k} request bytes`);
      t.same(outcome(() => j.responseSerialize(v)), outcome(() => p.responseSerialize(v)), `${k} response bytes`);
      const req = outcome(() => Buffer.from(p.requestSerialize(v)));
      const res = outcome(() => Buffer.from(p.responseSerialize(v)));
      if (Buffer.isBuffer(req)) t.strictSame(j.requestDeserialize(req), p.requestDeserialize(req), `${k} request decoded`);
      if (Buffer.isBuffer(res)) t.strictSame(j.responseDeserialize(res), p.responseDeserialize(res), `${k} response decoded (longs as numbers, defaults)`);
    }
  }
}

t.test('the client definitions made from the build JSON are proto-loader\'s, call for call', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'containerd-api.json');
  writeFileSync(file, descriptorJson());
  const root = prebuiltRoot(pathToFileURL(file));
  t.ok(root, 'the JSON matches the .proto files and is used');
  const { parsed, services } = reference(t);
  const lean = new Map<string, MethodDef>();
  for (const svc of services) {
    for (const [m, md] of Object.entries(serviceDefinition(root!, svc))) lean.set(`${svc}.${m}`, md as unknown as MethodDef);
  }
  sameAsProtoLoader(t, lean, parsed);
});

/**
 * A static module generated now, as `make build` does, written beside the build's (its
 * `require('protobufjs/minimal')` resolves the same) under a name of its own, and loaded.
 */
async function freshStaticModule(t: Test): Promise<Record<string, unknown>> {
  const file = fileURLToPath(new URL(`./containerd-api.test-${process.pid}.pb.cjs`, STATIC_MODULE_URL));
  t.teardown(() => rmSync(file, { force: true }));
  writeFileSync(file, await staticModuleSource());
  return createRequire(import.meta.url)(file) as Record<string, unknown>;
}

t.test('the client definitions made from the static module are proto-loader\'s, call for call', { skip: noPbjs }, async (t) => {
  const m = staticModuleOf(await freshStaticModule(t));
  t.ok(m, 'the static module matches the .proto files and is used');
  const { parsed, services } = reference(t);
  const lean = new Map<string, MethodDef>();
  for (const svc of services) {
    const def = staticServiceDefinition(m!, svc);
    t.ok(def, `${svc} is in the static module`);
    for (const [name, md] of Object.entries(def ?? {})) lean.set(`${svc}.${name}`, md as unknown as MethodDef);
  }
  sameAsProtoLoader(t, lean, parsed);
});

t.test('a static module made from other .proto text, or without the build\'s additions, is not used', { skip: noPbjs }, async (t) => {
  const m = await freshStaticModule(t);
  const meta = m[STATIC_META_KEY] as { sources: string; services: Record<string, unknown> };
  t.equal(meta.sources, protoSourcesDigest());
  t.equal(staticModuleOf({ ...m, [STATIC_META_KEY]: { ...meta, sources: '0'.repeat(64) } }), undefined, 'stale: the JSON instead');
  t.equal(staticModuleOf({ ...m, [STATIC_META_KEY]: undefined }), undefined, 'no digest: the JSON instead');
  t.equal(staticModuleOf(undefined), undefined, 'none: the JSON instead');
  const partial = staticModuleOf({ ...m, google: undefined });
  t.ok(partial, 'the digest matches');
  t.equal(staticServiceDefinition(partial!, 'containerd.services.leases.v1.Leases'), undefined, 'a type missing (google.protobuf.Empty): the JSON instead');
  t.equal(staticServiceDefinition(partial!, 'no.such.Service'), undefined, 'a service missing: the JSON instead');
});

t.test('a JSON made from other .proto text, or none, is not used', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'containerd-api.json');
  const d = JSON.parse(descriptorJson()) as { sources: string };
  t.equal(d.sources, protoSourcesDigest());
  writeFileSync(file, JSON.stringify({ ...d, sources: '0'.repeat(64) }));
  t.equal(prebuiltRoot(pathToFileURL(file)), undefined, 'stale: parsed instead');
  t.equal(prebuiltRoot(pathToFileURL(join(dir, 'missing.json'))), undefined, 'missing: parsed instead');
  writeFileSync(file, '{not json');
  t.equal(prebuiltRoot(pathToFileURL(file)), undefined, 'unreadable: parsed instead');
});
