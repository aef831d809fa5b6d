/** `clip-snapshotter pull` against a private containerd and registry, with overlayfs (every layer a full pull). */
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHarness, runCommand, REPO_ROOT, TEST_NAMESPACE } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';
import { ContainerdClient, ContentStoreLayerResolver, chainIds, type PullSummary } from '../../snapshotter/src/containerd/index.js';
import { pushTwoPlatformIndex } from './push-index.js';

t.setTimeout(600_000);
if (process.getuid?.() !== 0) t.plan(0, 'needs root: containerd, mounts and runc');

const RUNNER = join(REPO_ROOT, 'build', 'integration', 'pull', 'run-pull.js');
const h = createHarness(t, 'clip-pull-');
const registry = await h.startRegistry();
const images = await buildAndPushImages({ hostPort: registry.hostPort });
const containerd = await h.startContainerd({ plainHttpRegistries: [registry.hostPort] });
const { ctr } = containerd;
const emptyConfig = join(h.root, 'empty.toml');
writeFileSync(emptyConfig, '');
const client = new ContainerdClient({ address: containerd.address, namespace: TEST_NAMESPACE });
t.teardown(() => client.close());
const source = `containerd.io/distribution.source.${registry.hostPort}`;

const pull = (ref: string, ...extra: string[]) =>
  runCommand(process.execPath, [RUNNER, ref, '--address', containerd.address, '--namespace', TEST_NAMESPACE, '--config', emptyConfig, ...extra], { allowFailure: true, timeoutMs: 300_000 });

async function pullOk(t: Test, ref: string): Promise<PullSummary> {
  const res = await pull(ref, '--snapshotter', 'overlayfs', '--plain-http');
  t.equal(res.code, 0, `pull ${ref} exits 0 (stderr: ${res.stderr.slice(-1000)})`);
  return JSON.parse(res.stdout) as PullSummary;
}

const bb = images.busybox;
const tricky = images.tricky;

await t.test('busybox: a full pull through the API, then ctr run', async (t) => {
  const s = await pullOk(t, bb.ref);
  t.match(s, { image: bb.ref, manifest: bb.manifestDigest, config: bb.configDigest, snapshotter: 'overlayfs', full: 1, lazy: 0, present: 0 });
  t.equal(s.chainId, bb.layers[0]?.diffId, 'one layer: the chain id is its diff id');
  t.type(s.duration_ms, 'number');

  const img = await client.getImage(bb.ref);
  t.match(img.target, { digest: bb.manifestDigest, mediaType: 'application/vnd.oci.image.manifest.v1+json' });
  const manifest = await client.contentInfo(bb.manifestDigest);
  t.equal(manifest.labels['containerd.io/gc.ref.content.config'], bb.configDigest);
  t.equal(manifest.labels['containerd.io/gc.ref.content.l.0'], bb.layers[0]?.digest);
  t.equal(manifest.labels[source], 'clip-test/busybox');
  const config = await client.contentInfo(bb.configDigest);
  t.equal(config.labels['containerd.io/gc.ref.snapshot.overlayfs'], s.chainId);
  t.equal(config.labels[source], 'clip-test/busybox');
  const layer = await client.contentInfo(bb.layers[0]?.digest ?? '');
  t.equal(layer.labels['containerd.io/uncompressed'], bb.layers[0]?.diffId);

  t.match((await ctr(['images', 'ls', '-q'])).stdout, bb.ref);
  t.match((await ctr(['snapshots', '--snapshotter', 'overlayfs', 'info', s.chainId])).stdout, /"Kind": "Committed"/);
  t.equal((await ctr(['leases', 'ls', '-q'])).stdout.trim(), '', 'the pull lease is gone');
  const run = await ctr(['run', '--rm', '--snapshotter', 'overlayfs', ...containerd.runcArgs(), bb.ref, 'pull-echo', 'echo', 'hi']);
  t.equal(run.stdout, 'hi\n');
});

await t.test('a second pull finds every layer present and downloads nothing', async (t) => {
  const before = registry.accessLogLines(bb.layers[0]?.digest).length;
  t.ok(before > 0, 'the first pull fetched the layer blob');
  const s = await pullOk(t, bb.ref);
  t.match(s, { full: 0, lazy: 0, present: 1 });
  t.equal(registry.accessLogLines(bb.layers[0]?.digest).length, before);
});

await t.test('tricky: three layers chained, whiteouts applied', async (t) => {
  const s = await pullOk(t, tricky.ref);
  const chains = chainIds(tricky.layers.map((l) => l.diffId));
  t.same(s.layers.map((l) => l.chainId), chains);
  t.same(s.layers.map((l) => l.mode), ['full', 'full', 'full']);
  const top = await client.statSnapshot('overlayfs', chains[2] ?? '');
  t.match(top, { kind: 'committed', parent: chains[1] });
  t.equal((await client.statSnapshot('overlayfs', chains[1] ?? '')).parent, chains[0]);
  const run = await ctr(['run', '--rm', '--snapshotter', 'overlayfs', ...containerd.runcArgs(), tricky.ref, 'pull-cat', 'cat', '/data/delete-dir/recreated.txt', '/data/replace-dir/new.txt']);
  t.equal(run.stdout, 'back in layer 3\nnew\n');
  const gone = await ctr(['run', '--rm', '--snapshotter', 'overlayfs', ...containerd.runcArgs(), tricky.ref, 'pull-ls', 'ls', '/data/delete-me.txt'], { allowFailure: true });
  t.not(gone.code, 0, 'a whited-out file is absent');
});

await t.test('an index: the linux/amd64 manifest is chosen and the index is recorded', async (t) => {
  const indexDigest = await pushTwoPlatformIndex(registry.url, 'clip-test/busybox', 'clip-test/tricky', bb, tricky, 'multi');
  const ref = `${registry.hostPort}/clip-test/busybox:multi`;
  const s = await pullOk(t, ref);
  t.match(s, { manifest: bb.manifestDigest, present: 1 });
  t.match((await client.getImage(ref)).target, { digest: indexDigest, mediaType: 'application/vnd.oci.image.index.v1+json' });
  const index = await client.contentInfo(indexDigest);
  t.equal(index.labels['containerd.io/gc.ref.content.m.0'], bb.manifestDigest);
  t.equal(index.labels[source], 'clip-test/busybox');
});

await t.test('content-store resolution finds layers by chain id through real containerd', async (t) => {
  const resolver = new ContentStoreLayerResolver({ client });
  const chains = chainIds(tricky.layers.map((l) => l.diffId));
  const got = await resolver.resolve(chains[2] ?? '');
  t.match(got, { host: registry.hostPort, repository: 'clip-test/tricky', layerDigest: tricky.layers[2]?.digest, index: 2, manifestDigest: tricky.manifestDigest });
  t.equal((await resolver.resolve(bb.layers[0]?.diffId ?? ''))?.repository, 'clip-test/busybox');
  t.equal(await resolver.resolve(`sha256:${'0'.repeat(64)}`), undefined);
});

await t.test('gc labels keep content and snapshots; removing the images releases them', async (t) => {
  const chains = chainIds(tricky.layers.map((l) => l.diffId));
  const gc = async (): Promise<void> => {
    const id = (await ctr(['leases', 'create'])).stdout.trim().split(/\s+/)[0] ?? '';
    await ctr(['leases', 'rm', '--sync', id]);
  };
  await gc();
  await client.statSnapshot('overlayfs', chains[2] ?? '');
  t.pass('top snapshot survives a garbage collection');
  t.equal((await client.contentInfo(tricky.layers[1]?.digest ?? '')).digest, tricky.layers[1]?.digest, 'layer blob survives');
  await ctr(['images', 'rm', '--sync', tricky.ref]);
  await gc();
  const err = await client.statSnapshot('overlayfs', chains[2] ?? '').then(() => undefined, (e: unknown) => e);
  t.match(err, { kind: 'not_found' }, 'snapshots collected with the image');
});

await t.test('content write in several chunks, read back, labels, second write is a no-op', async (t) => {
  const data = randomBytes(3 * 1024 * 1024 + 12345);
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  const lease = await client.createLease({ expireAfterMs: 60_000 });
  const leased = client.withLease(lease);
  t.same(await leased.writeContent({ ref: 'test-big', digest, size: data.length, labels: { a: '1' }, data }), { written: true });
  t.ok((await leased.readContent(digest)).equals(data), 'bytes read back equal');
  t.ok((await leased.readContent(digest, { offset: 100, size: 10 })).equals(data.subarray(100, 110)), 'range read');
  t.same(await leased.writeContent({ ref: 'test-big-2', digest, size: data.length, data }), { written: false });
  const info = await leased.updateContentLabels(digest, { b: '2', a: '' });
  t.same(info.labels, { b: '2' }, 'a label set to empty is removed, others kept');
  const bad = await leased.writeContent({ ref: 'test-bad', digest: `sha256:${'1'.repeat(64)}`, size: 3, data: Buffer.from('abc') }).then(() => undefined, (e: unknown) => e);
  t.match(bad, { kind: 'failed_precondition' }, 'a digest mismatch is refused by containerd');
  await client.deleteLease(lease, true);
});

await t.test('exit codes', async (t) => {
  t.equal((await pull('')).code, 2, 'empty reference is a usage error');
  t.equal((await runCommand(process.execPath, [RUNNER], { allowFailure: true })).code, 2, 'no reference');
  t.equal((await pull(bb.ref, '--bogus')).code, 2, 'unknown flag');
  const missing = await pull(`${registry.hostPort}/clip-test/nope:latest`, '--snapshotter', 'overlayfs');
  t.equal(missing.code, 1);
  t.match(missing.stderr, /not found/);
  const noContainerd = await runCommand(process.execPath, [RUNNER, bb.ref, '--address', join(h.root, 'none.sock'), '--config', emptyConfig], { allowFailure: true, timeoutMs: 120_000 });
  t.equal(noContainerd.code, 1);
});
