/**
 * Issue 15, deliverable 4 (pull latency): the containerd API definitions `make build` writes as
 * JSON are the ones parsed from the .proto files, and the client definitions made from them
 * straight (without proto-loader's package definition) match proto-loader's — same services,
 * methods, paths, streaming and message encodings — and a JSON made from other .proto text is not used.
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { PackageDefinition } from '@grpc/proto-loader';
import { descriptorJson, parsedDefinition, prebuiltRoot, protoSourcesDigest, serviceDefinition } from '../../src/containerd/proto.js';
import { tempDir } from '../storage/fixtures.js';

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
];

/** What `f` returns, or the message it throws. */
function outcome(f: () => unknown): unknown {
  try {
    return f();
  } catch (err) {
    return { threw: (err as Error).message };
  }
}

t.test('the client definitions made from the build JSON are proto-loader\'s, call for call', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'containerd-api.json');
  writeFileSync(file, descriptorJson());
  const root = prebuiltRoot(pathToFileURL(file));
  t.ok(root, 'the JSON matches the .proto files and is used');
  const parsed = methods(parsedDefinition());
  t.ok(parsed.has('containerd.services.leases.v1.Leases.Create'), 'the check sees the services');
  const services = new Set([...parsed.keys()].map((k) => k.slice(0, k.lastIndexOf('.'))));
  t.ok(services.size >= 5, 'content, images, leases, diff, snapshots');
  const lean = new Map<string, MethodDef>();
  for (const svc of services) {
    for (const [m, md] of Object.entries(serviceDefinition(root!, svc))) lean.set(`${svc}.${m}`, md as unknown as MethodDef);
  }
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
