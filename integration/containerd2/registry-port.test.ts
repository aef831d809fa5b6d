/**
 * A registry on a non-default port and no hosts.toml for clip (issue 13): containerd records the
 * content source without the port, so a snapshot.ref-only Prepare (transfer service without the
 * clip export, nerdctl >= 2.3, the Go client) names only `127.0.0.1`. clip then takes the port
 * from the image names in containerd's image store. The very first pull from such a registry has
 * no image record yet (containerd writes it after unpacking): that pull falls back to an ordinary
 * snapshot, correct but not lazy; every later image from the registry is lazy.
 */
import t from 'tap';
import { join } from 'node:path';
import { createHarness, goModulePins } from '../harness/index.js';
import {
  LABEL_REMOTE,
  chainIdsOf,
  clipConfig,
  compareWithOverlayfs,
  ctrRun,
  indexImage,
  layerBytesSince,
  pathImageSpec,
  pushSpec,
  snapshotLabels,
} from './pull-paths.js';

t.setTimeout(900_000);
const version = goModulePins().containerd2Versions[0]!;

await t.test(`containerd ${version}: registry port from the image store, no hosts.toml`, async (t) => {
  const h = createHarness(t, 'clip-port-');
  const registry = await h.startRegistry();
  const dir = join(h.root, 'c');
  // No [registry] config_path: nothing tells clip the port but containerd itself.
  const config = clipConfig(join(h.root, 'clip.toml'), join(dir, 'containerd.sock'), undefined);
  const snap = await h.startSnapshotter({ root: join(h.root, 'clip', 'root'), address: join(h.root, 'clip', 'clip.sock'), extraArgs: ['--config', config] });
  const c = await h.startContainerd({ dirName: 'c', version, snapshotters: { clip: snap.address }, plainHttpRegistries: [registry.hostPort] });
  const pull = (ref: string): Promise<unknown> => c.ctr(['images', 'pull', '--plain-http', '--hosts-dir', c.hostsDir, '--snapshotter', 'clip', ref]);

  const first = await pushSpec(pathImageSpec('port-first'), registry);
  const second = await pushSpec(pathImageSpec('port-second'), registry);
  await indexImage(t, first);
  await indexImage(t, second);

  await t.test('first pull from the registry: no image record yet, an ordinary snapshot, correct', async (t) => {
    await pull(first.ref);
    const top = await snapshotLabels(c, chainIdsOf(first).at(-1)!, 'clip-test');
    t.notOk(top[LABEL_REMOTE], 'not lazy: the port is nowhere yet');
    t.match(snap.log(), /fell back/, 'clip logged the fallback');
    t.equal(await ctrRun(c, first.ref, ['cat', '/data/hello.txt']), 'lazy hello\n');
    await compareWithOverlayfs(t, h, c, first, 'clip-test', 'port-first');
  });

  await t.test('next image from the registry: the port comes from the image store, lazy', async (t) => {
    const mark = registry.accessLogLines().length;
    await pull(second.ref);
    const bytes = layerBytesSince(registry, mark, second.layers.map((l) => l.digest));
    for (const chain of chainIdsOf(second)) {
      const labels = await snapshotLabels(c, chain, 'clip-test');
      t.equal(labels[LABEL_REMOTE], 'remote snapshot', `${chain.slice(7, 19)} mounted lazily`);
      t.match(labels['containerd.io/snapshot/clip.image-ref'] ?? '', `${registry.hostPort}/clip-test/port-second@sha256:`, 'with the registry port restored');
    }
    t.equal(bytes, 0, 'the pull fetched no layer bytes');
    t.match(snap.log(), /registry port from the image store/);
    t.equal(await ctrRun(c, second.ref, ['cat', '/data/hello.txt']), 'lazy hello\n');
    await compareWithOverlayfs(t, h, c, second, 'clip-test', 'port-second');
  });
});
