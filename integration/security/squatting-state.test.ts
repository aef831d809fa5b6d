/**
 * Issue 12, deliver 5, end to end: a squatting image whose config *and* forged index artifact claim
 * a popular layer's diffID for a different blob passes the chain-ID check (its chain differs from
 * the victim's only by its other layers). Pulled first, it is mounted and holds layer state on the
 * node; the victim pulled next must not share any of it — the victim's container reads its true
 * bytes. The squatter's own layer, once its download shows the blob does not produce the claimed
 * diffID, is quarantined: its reads fail with EIO, and the victim keeps working. The quarantine
 * survives a restart of the FUSE server and the daemon (`<root>/quarantine.json`).
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { buildIndex, encodeIndex } from '../../snapshotter/src/clip/index.js';
import { pushIndexArtifact } from '../../snapshotter/src/artifact/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { member, tar } from '../../snapshotter/test/clip/tar-fixtures.js';
import { createHarness, runCommand, waitUntil, type Containerd } from '../harness/index.js';
import { parseAccessLog } from '../harness/registry-bytes.js';
import { buildImage, IMAGE_SPECS } from '../images/index.js';
import { baseLayerOf, gzipLayer, pushCraftedImage } from './crafted-image.js';

t.setTimeout(900_000);
const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));
let seq = 0;

async function clip(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await runCommand('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args], { allowFailure: true, timeoutMs: 240_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

async function run(c: Containerd, ref: string, cmd: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `squat-${++seq}`, ...cmd], { allowFailure: true, timeoutMs: 120_000 });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

const file = (name: string, text: string): Buffer => tar(member({ name, mode: 0o644 }, text));

/** An index artifact for `imageRef` whose entry for `layer` claims `claimedDiffId` (the rest is the layer's true index). */
async function pushForgedIndex(imageRef: string, manifestDigest: string, layer: { blob: Buffer; digest: string }, claimedDiffId: string): Promise<void> {
  const built = await buildIndex(Readable.from([layer.blob]), { compressedDigest: layer.digest });
  const forged = encodeIndex({ ...built, meta: { ...built.meta, diffId: claimedDiffId } });
  const client = new RegistryClient({ plainHttp: true });
  try {
    const repo = imageRef.slice(0, imageRef.lastIndexOf(':'));
    const { descriptor } = await client.getManifest(`${repo}@${manifestDigest}`);
    await pushIndexArtifact(client, repo, descriptor, [{ digest: layer.digest, diffId: claimedDiffId, index: forged }]);
  } finally {
    await client.close();
  }
}

t.test('a squatter whose config and index claim the victim\'s diffID: the victim reads its true bytes, the squatter is quarantined', async (t) => {
  const h = createHarness(t, 'clip-squat-');
  const registry = await h.startRegistry();
  const base = baseLayerOf(await buildImage(IMAGE_SPECS.busybox));
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');

  const popular = gzipLayer(file('popular.txt', 'true popular bytes\n'));
  const planted = gzipLayer(file('popular.txt', 'PLANTED\n'));
  const extra = gzipLayer(file('extra.txt', 'another parent\n'));
  // Config and index both say "the popular layer": the chain-ID check holds (sha256 of the parent
  // chain and that diffID is what containerd asks for), so the squatter's layer mounts lazily.
  const squatter = await pushCraftedImage(registry.hostPort, 'squatter', [base, extra, { blob: planted.blob, diffId: popular.diffId }]);
  await pushForgedIndex(squatter.ref, squatter.manifestDigest, { blob: planted.blob, digest: squatter.layers[2]!.digest }, popular.diffId);
  const victim = await pushCraftedImage(registry.hostPort, 'popular', [base, popular]);

  const pulled = await clip(['pull', squatter.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(pulled.code, 0, `the squatter pulls: ${pulled.stderr.slice(-300)}`);
  t.match(snap.log(), new RegExp(`"layer":"${squatter.layers[2]!.digest}"[^\\n]*"source":"artifact"[^\\n]*"msg":"index resolved"`), 'with its forged index from the registry');
  t.match(pulled.stdout + pulled.stderr, /lazy/, 'lazily');

  // The squatter's container makes the node download its blob: the diffID check at the end fails.
  // (Its own container may see its planted bytes first: reads are served before the end-of-layer hash.)
  const squat = await run(c, squatter.ref, ['cat', '/popular.txt']);
  t.comment(`the squatter's first read: ${JSON.stringify(squat.stdout + squat.stderr)}`);
  await waitUntil('the squatter\'s layer is quarantined', async () => snap.log().includes('layer quarantined'), 60_000);
  t.match(snap.log(), /"code":"CLIP_LAYER_QUARANTINED"[^\n]*"msg":"layer quarantined/, 'with its code');

  // The squatter's layer stays mounted (containerd holds its snapshot) while the victim arrives.
  const ok = await clip(['pull', victim.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http']);
  t.equal(ok.code, 0, `the victim pulls: ${ok.stderr.slice(-300)}`);
  // The squatter's quarantine is its own: the victim's layer (another blob) still mounts lazily.
  t.match(ok.stdout + ok.stderr, new RegExp(`${victim.layers[1]!.digest}: lazy`), 'the victim\'s layer is lazy');
  const first = await run(c, victim.ref, ['cat', '/popular.txt']);
  t.equal(first.stdout, 'true popular bytes\n', `the victim runs on its true bytes ${first.stderr.slice(-300)}`);
  const again = await run(c, squatter.ref, ['cat', '/popular.txt']);
  t.not(again.code, 0, 'the squatter no longer runs on its layer');
  // The container's Prepare checks its lazy parents: a quarantined one is refused before any read.
  t.match(again.stderr + again.stdout, /quarantined|Input\/output error/, `a clean error: ${(again.stderr + again.stdout).slice(-200)}`);
  const keeps = await run(c, victim.ref, ['cat', '/popular.txt']);
  t.equal(keeps.stdout, 'true popular bytes\n', `the victim keeps working ${keeps.stderr.slice(-300)}`);

  // The quarantine survives a restart of the FUSE server and the daemon (<root>/quarantine.json):
  // the squatter's snapshot is not re-mounted, its blob is not fetched again, nothing it planted is served.
  const q = JSON.parse(await readFile(join(h.snapshotterPaths.root, 'quarantine.json'), 'utf8')) as { entries: Array<{ kind: string; layer: string }> };
  t.ok(q.entries.some((e) => e.kind === 'layer' && e.layer === squatter.layers[2]!.digest), 'quarantine.json holds the squatter\'s layer');
  const mark = snap.log().length;
  const blobGets = (): Promise<number> => registryBlobGets(registry.logPath, squatter.layers[2]!.digest);
  const getsBefore = await blobGets();
  // The daemon first: a live daemon would start a new FUSE server as soon as its old one died.
  await snap.kill('SIGKILL');
  await snap.killFuseServer('SIGKILL');
  await snap.restart();
  await c.waitForSnapshotter('clip');
  await waitUntil('lazy layers restored', async () => /"msg":"lazy layers restored"/.test(snap.log().slice(mark)), 120_000);
  t.match(snap.log().slice(mark), /was quarantined at [^\n]*"msg":"could not re-mount a lazy layer"/, 'the restarted node refuses the squatter\'s layer from its record');
  const afterRestart = await run(c, squatter.ref, ['cat', '/popular.txt']);
  t.not(afterRestart.code, 0, `the squatter still does not run: ${(afterRestart.stderr + afterRestart.stdout).slice(-300)}`);
  t.notMatch(afterRestart.stdout, /PLANTED/, 'never the planted bytes');
  t.match(afterRestart.stderr, /was quarantined at/, 'refused with the recorded reason, not a bare "not mounted"');
  t.equal(await blobGets(), getsBefore, 'the squatter\'s blob was not fetched again');
  const after = await run(c, victim.ref, ['cat', '/popular.txt']);
  t.equal(after.stdout, 'true popular bytes\n', `the victim runs after the restart ${after.stderr.slice(-300)}`);
});

/** GETs of one blob in the registry's access log. */
async function registryBlobGets(logPath: string, digest: string): Promise<number> {
  const text = await readFile(logPath, 'utf8');
  return parseAccessLog(text.split('\n').filter((l) => l.includes(`/blobs/${digest}`)).join('\n')).blobGets;
}
