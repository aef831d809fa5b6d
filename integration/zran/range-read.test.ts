/**
 * Range reads against a real docker-registry: a file deep inside a ~40 MiB layer — gzip with the
 * index's checkpoints, or multi-frame zstd (pzstd) with its frame table — is read through
 * LayerStore, and the registry's access log shows only small `206` responses — far fewer bytes
 * than the layer — and no whole-blob GET.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { createHarness, type Registry } from '../harness/index.js';
import { buildIndex, decodeIndex, encodeIndex } from '../../snapshotter/src/clip/index.js';
import { NoContentCache } from '../../snapshotter/src/contentcache/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { LayerStore, RegistryBlobSource } from '../../snapshotter/src/storage/index.js';
import { randomAccessObserver } from '../../snapshotter/src/zran/index.js';
import { sampleData } from '../../snapshotter/test/zran/fixtures.js';
import { pushTestBlob } from '../harness/push-blob.js';

const REPO = 'clip/zran-test';

const pushBlob = (reg: Registry, blob: Buffer, digest: string): Promise<void> => pushTestBlob(reg.host, REPO, blob, digest);

/** Status and body bytes of the registry's GETs of a blob (combined access-log format). */
function blobGets(reg: Registry, digest: string): Array<{ status: number; bytes: number }> {
  return reg.accessLogLines(`/blobs/${digest}`)
    .filter((l) => l.includes('"GET '))
    .map((l) => {
      const m = /" (\d{3}) (\d+|-) /.exec(l);
      return { status: Number(m?.[1] ?? 0), bytes: m?.[2] === '-' || !m ? 0 : Number(m[2]) };
    });
}

const CODECS: Record<string, string[]> = {
  gzip: ['gzip', '-6', '-c', '-n'],
  'zstd (pzstd, 2 MiB frames)': ['pzstd', '-q', '-1', '-p', '2', '-c'],
};

for (const [codec, [cmd, ...args]] of Object.entries(CODECS)) t.test(`a file deep in a large ${codec} layer costs a few small Range requests`, async (t) => {
  const h = createHarness(t, 'clip-zran-');
  const reg = await h.startRegistry();
  const root = join(h.root, 'layer');
  await mkdir(join(root, 'usr', 'lib'), { recursive: true });
  for (let i = 0; i < 10; i++) await writeFile(join(root, 'usr', 'lib', `lib${i}.so`), sampleData(4 * 1024 * 1024 + i * 4099, 100 + i));
  const deep = Buffer.from('print(1)\n'.repeat(5000));
  await writeFile(join(root, 'usr', 'lib', 'zz-deep.py'), deep);
  const tar = execFileSync('tar', ['-C', root, '--sort=name', '-cf', '-', '.'], { maxBuffer: 1 << 30 });
  const blob = execFileSync(cmd as string, args, { input: tar, maxBuffer: 1 << 30 });
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  await pushBlob(reg, blob, digest);

  const built = await buildIndex(Readable.from([blob]), { compressedObserver: randomAccessObserver({ gzip: true, zstd: true, minLayerBytes: 0 }) });
  const index = decodeIndex(encodeIndex(built));
  t.ok(index.gzipCheckpoints ?? index.zstdFrames, 'the index carries a random-access table');

  const client = new RegistryClient({ plainHttp: true, maxRetries: 1, connectTimeoutMs: 1_000, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  const store = await LayerStore.create({
    cacheDir: join(h.root, 'cache', 'layers'), blobs: new RegistryBlobSource(client), contentCache: new NoContentCache(), rangeReads: true,
  });
  t.teardown(() => store.close());
  const reader = store.open({
    ref: `${reg.hostPort}/${REPO}:v1`, digest, diffId: index.meta.diffId, uncompressedSize: index.meta.uncompressedSize,
    gzipCheckpoints: index.gzipCheckpoints, zstdFrames: index.zstdFrames,
  });
  t.teardown(() => reader.close());

  const entry = index.lookup('usr/lib/zz-deep.py');
  if (entry?.type !== 'file') throw new Error('deep file missing from the index');
  t.ok(entry.dataOffset > tar.length * 0.9, `file at ${entry.dataOffset} of ${tar.length}`);
  const got = Buffer.alloc(entry.size);
  t.equal(await reader.read(got, 0, entry.size, entry.dataOffset), entry.size);
  t.ok(got.equals(deep), 'byte-exact through the registry');
  const mid = index.lookup('usr/lib/lib4.so');
  if (mid?.type === 'file') {
    const buf = Buffer.alloc(300_000);
    await reader.read(buf, 0, buf.length, mid.dataOffset + 1_000_000);
    t.ok(buf.equals(tar.subarray(mid.dataOffset + 1_000_000, mid.dataOffset + 1_300_000)), 'a second read elsewhere, byte-exact');
  }

  const gets = blobGets(reg, digest);
  const fetched = gets.reduce((n, g) => n + g.bytes, 0);
  t.ok(gets.length > 0 && gets.every((g) => g.status === 206), `only 206 responses: ${JSON.stringify(gets)}`);
  t.ok(fetched < blob.length / 4, `registry sent ${fetched} of ${blob.length} bytes`);
  t.comment(`layer ${blob.length} B compressed / ${tar.length} B tar; ${gets.length} range GETs, ${fetched} B`);
});
