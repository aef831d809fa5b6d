/**
 * Issue 12, deliver 3, end to end: an index artifact pushed for a legitimate image (right subject,
 * right artifactType, right diffID) that describes its layer wrongly — a plain file made setuid
 * root, another file's data pointing at the first one's bytes. The node serves the layer through it
 * until the layer is complete (the known limit: the first container sees the forged modes and
 * offsets); then the index is rebuilt from the diffID-verified layer, the difference cuts off every
 * mount through the forged index (CLIP_INDEX_MISMATCH → CLIP_LAYER_QUARANTINED: new containers on it
 * are refused), the index digest is recorded in quarantine.json and the node's own index replaces
 * it — so another image with the same layer, and the same snapshot re-mounted after the
 * FUSE server and the daemon restart, read the true bytes. The counter-check runs the same attack
 * with `check_foreign_indexes = false` and sees the forged data stay.
 */
import t, { type Test } from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildIndex, encodeIndex, type BuiltEntry } from '../../snapshotter/src/clip/index.js';
import { pushIndexArtifact } from '../../snapshotter/src/artifact/index.js';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { member, tar } from '../../snapshotter/test/clip/tar-fixtures.js';
import { createHarness, runClipCli, waitUntil, type Containerd, type Harness, type Snapshotter } from '../harness/index.js';
import { buildImage, IMAGE_SPECS } from '../images/index.js';
import { baseLayerOf, gzipLayer, pushCraftedImage, type CraftedImage } from './crafted-image.js';

t.setTimeout(900_000);
let seq = 0;

const TOOL = '#!/bin/sh\necho tool\n';
const DATA = 'layer data\n';
/** What a container prints: /tool's mode, then /data.txt. */
const PROBE = ['sh', '-c', 'stat -c %a /tool && cat /data.txt'];
const TRUE_VIEW = `755\n${DATA}`;
const FORGED_VIEW = `4755\n${TOOL}`;

async function run(c: Containerd, ref: string, cmd: string[]): Promise<{ code: number; out: string; err: string }> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `forged-${++seq}`, ...cmd], { allowFailure: true, timeoutMs: 120_000 });
  return { code: res.code ?? -1, out: res.stdout, err: res.stderr };
}

/**
 * Push, for the image's top layer, an index artifact in which /tool is setuid root and /data.txt's
 * bytes are /tool's: everything else (subject, artifactType, diffID, size) is right.
 */
async function pushForgedIndex(image: CraftedImage, blob: Buffer): Promise<void> {
  const top = image.layers[image.layers.length - 1]!;
  const built = await buildIndex(Readable.from([blob]), { compressedDigest: top.digest });
  const tool = built.entries.find((e) => e.path === 'tool') as BuiltEntry;
  const entries = built.entries.map((e) => {
    if (e.path === 'tool') return { ...e, mode: (e.mode & ~0o7777) | 0o4755 };
    if (e.path === 'data.txt' && e.type === 'file') return { ...e, dataOffset: tool.dataOffset, size: tool.size };
    return e;
  });
  const client = new RegistryClient({ plainHttp: true });
  try {
    const repo = image.ref.slice(0, image.ref.lastIndexOf(':'));
    const { descriptor } = await client.getManifest(`${repo}@${image.manifestDigest}`);
    await pushIndexArtifact(client, repo, descriptor, [{ digest: top.digest, diffId: top.diffId, index: encodeIndex({ ...built, entries }) }]);
  } finally {
    await client.close();
  }
}

interface Node {
  h: Harness;
  c: Containerd;
  snap: Snapshotter;
  image: CraftedImage;
  /** An image with the same layer over another parent (no artifact of its own). */
  sibling: CraftedImage;
  pull(ref: string): Promise<void>;
}

/** A node, a registry, and an image whose index artifact is forged; `[index]` lines go into the config. */
async function forgedNode(t: Test, name: string, index: string): Promise<Node> {
  const h = createHarness(t, `clip-${name}-`);
  const registry = await h.startRegistry();
  const base = baseLayerOf(await buildImage(IMAGE_SPECS.busybox));
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n[index]\n${index}\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const layer = gzipLayer(tar(member({ name: 'tool', mode: 0o755 }, TOOL), member({ name: 'data.txt', mode: 0o644 }, DATA)));
  const image = await pushCraftedImage(registry.hostPort, name, [base, layer]);
  await pushForgedIndex(image, layer.blob);
  const extra = gzipLayer(tar(member({ name: 'extra.txt', mode: 0o644 }, 'another parent\n')));
  const sibling = await pushCraftedImage(registry.hostPort, `${name}-sibling`, [base, extra, layer]);
  const pull = async (ref: string): Promise<void> => {
    const r = await runClipCli(['pull', ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http'], { allowFailure: true, timeoutMs: 240_000 });
    t.equal(r.code, 0, `pulled ${ref}: ${r.stderr.slice(-300)}`);
  };
  return { h, c, snap, image, sibling, pull };
}

t.test('a forged index artifact: served until its layer completes, then cut off, recorded and replaced by the layer\'s own index', async (t) => {
  const { h, c, snap, image, sibling, pull } = await forgedNode(t, 'forged-index', 'check_foreign_indexes = true');
  const top = image.layers[1]!;
  await pull(image.ref);
  t.match(snap.log(), new RegExp(`"layer":"${top.digest}"[^\\n]*"source":"artifact"[^\\n]*"msg":"index resolved"`), 'lazily, through the forged artifact');

  // The known limit: until the layer is complete the forged index decides modes and offsets. The
  // container's read of /data.txt makes the node download the layer, which completes it.
  const first = await run(c, image.ref, PROBE);
  t.equal(first.out, FORGED_VIEW, 'before completion the first container sees what the forged index says (the known limit)');
  await waitUntil('the forged index is found out', async () => snap.log().includes('index does not describe its layer'), 120_000);
  t.match(snap.log(), /"code":"CLIP_INDEX_MISMATCH"[^\n]*"msg":"index does not describe its layer/, 'with its code');

  // Every mount through the forged index is cut off: a new container on it is refused cleanly.
  const refused = await run(c, image.ref, PROBE);
  t.not(refused.code, 0, 'a new container on the forged mount is refused');
  t.notMatch(refused.out, /4755/, 'never the forged setuid bit after the check');
  t.match(refused.err + refused.out, /quarantined|Input\/output error/, `a clean error: ${(refused.err + refused.out).slice(-300)}`);

  // The forged index is recorded (by digest) and gone from the local cache.
  const q = JSON.parse(await readFile(join(h.snapshotterPaths.root, 'quarantine.json'), 'utf8')) as { entries: Array<{ kind: string; layer: string; code: string }> };
  t.ok(q.entries.some((e) => e.kind === 'index' && e.layer === top.digest && e.code === 'CLIP_INDEX_MISMATCH'), 'quarantine.json records the forged index');

  // Another image with the same layer over another parent (a new snapshot of the layer): the local
  // index cache, keyed by the layer digest, now holds the node's own index, not the forged one.
  const mark = snap.log().length;
  await pull(sibling.ref);
  t.match(snap.log().slice(mark), new RegExp(`"layer":"${top.digest}"[^\\n]*"source":"local"[^\\n]*"msg":"layer mounted"`), 'from the replaced local index');
  const other = await run(c, sibling.ref, PROBE);
  t.equal(other.out, TRUE_VIEW, `a container of the other image reads the true mode and bytes ${other.err.slice(-200)}`);
  t.notMatch(snap.log().slice(mark), /index checked against its completed layer|index does not describe/, 'the replacement is trusted: no second check');

  // A restart of the FUSE server and the daemon re-mounts the first snapshot from the local cache,
  // which no longer holds the forged index.
  // The daemon first: a live daemon would start a new FUSE server as soon as its old one died.
  await snap.kill('SIGKILL');
  await snap.killFuseServer('SIGKILL');
  await snap.restart();
  await c.waitForSnapshotter('clip');
  await waitUntil('lazy layers restored', async () => /"msg":"lazy layers restored"/.test(snap.log().slice(mark)), 120_000);
  const restarted = await run(c, image.ref, PROBE);
  t.equal(restarted.out, TRUE_VIEW, `after the restart the first pull's snapshot reads the true bytes ${restarted.err.slice(-300)}`);
});

t.test('counter-check: with check_foreign_indexes = false the forged index keeps deciding after completion', async (t) => {
  const { c, snap, image, pull } = await forgedNode(t, 'forged-unchecked', 'check_foreign_indexes = false');
  await pull(image.ref);
  const first = await run(c, image.ref, PROBE);
  t.equal(first.out, FORGED_VIEW, 'the forged view before completion');
  await waitUntil('the layer is downloaded', async () => snap.log().includes('"msg":"layer downloaded"'), 120_000);
  const again = await run(c, image.ref, PROBE);
  t.equal(again.out, FORGED_VIEW, 'and after it: without the check nothing catches the forged index');
  t.notMatch(snap.log(), /index does not describe its layer/, 'no check ran');
});
