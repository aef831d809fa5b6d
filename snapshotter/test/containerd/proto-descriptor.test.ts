/**
 * Issue 15, deliverable 4 (pull latency): the containerd API definitions `make build` writes as
 * JSON are the ones parsed from the .proto files — same services, methods, paths and message
 * encodings — and a JSON made from other .proto text is not used.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PackageDefinition } from '@grpc/proto-loader';
import { descriptorJson, parsedDefinition, prebuiltDefinition, protoSourcesDigest } from '../../src/containerd/proto.js';
import { tempDir } from '../storage/fixtures.js';

interface MethodDef {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(v: unknown): Buffer;
  responseDeserialize(b: Buffer): unknown;
  requestType: { type: unknown };
  responseType: { type: unknown };
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

t.test('the JSON written at build time gives the definitions parsed from the .proto files', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'containerd-api.json');
  writeFileSync(file, descriptorJson());
  const built = prebuiltDefinition(pathToFileURL(file));
  t.ok(built, 'the JSON matches the .proto files and is used');
  const parsed = methods(parsedDefinition());
  const fromJson = methods(built!);
  t.ok(parsed.has('containerd.services.leases.v1.Leases.Create'), 'the check sees the services');
  t.same([...fromJson.keys()].sort(), [...parsed.keys()].sort(), 'same services and methods');
  for (const [k, p] of parsed) {
    const j = fromJson.get(k)!;
    t.same({ path: j.path, requestStream: j.requestStream, responseStream: j.responseStream }, { path: p.path, requestStream: p.requestStream, responseStream: p.responseStream }, k);
    t.same(j.requestType.type, p.requestType.type, `${k} request type`);
    t.same(j.responseType.type, p.responseType.type, `${k} response type`);
  }
  // One message through both: the same bytes on the wire, the same object back.
  const prepare = { key: 'k', parent: 'p', labels: { a: 'b' }, snapshotter: 'clip' };
  const p = parsed.get('containerd.services.snapshots.v1.Snapshots.Prepare')!;
  const j = fromJson.get('containerd.services.snapshots.v1.Snapshots.Prepare')!;
  t.same(j.requestSerialize(prepare), p.requestSerialize(prepare));
  const lease = { lease: { id: 'x', labels: {}, created_at: { seconds: 5, nanos: 6 } } };
  const pl = parsed.get('containerd.services.leases.v1.Leases.Create')!;
  const jl = fromJson.get('containerd.services.leases.v1.Leases.Create')!;
  const bytes = Buffer.from((pl as unknown as { responseSerialize(v: unknown): Buffer }).responseSerialize(lease));
  t.same(jl.responseDeserialize(bytes), pl.responseDeserialize(bytes), 'a response decodes the same (longs as numbers, defaults)');
});

t.test('a JSON made from other .proto text, or none, is not used', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'containerd-api.json');
  const d = JSON.parse(descriptorJson()) as { sources: string };
  t.equal(d.sources, protoSourcesDigest());
  writeFileSync(file, JSON.stringify({ ...d, sources: '0'.repeat(64) }));
  t.equal(prebuiltDefinition(pathToFileURL(file)), undefined, 'stale: parsed instead');
  t.equal(prebuiltDefinition(pathToFileURL(join(dir, 'missing.json'))), undefined, 'missing: parsed instead');
  writeFileSync(file, '{not json');
  t.equal(prebuiltDefinition(pathToFileURL(file)), undefined, 'unreadable: parsed instead');
});
