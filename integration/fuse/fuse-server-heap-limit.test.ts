/**
 * `[fuse_server] max_old_space_mb` (issue 15, memory): the FUSE server the daemon starts for a lazy
 * layer runs with that V8 heap limit, and serves the container's reads.
 */
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli } from '../harness/index.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(300_000);

t.test('the FUSE server the daemon starts gets [fuse_server] max_old_space_mb as its heap limit', async (t) => {
  const h = createHarness(t, 'clip-heap-limit-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort });
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, `containerd_address = "${c.address}"\ncontainerd_namespace = "clip-test"\n[registry]\nconfig_path = "${c.hostsDir}"\n[fuse_server]\nmax_old_space_mb = 192\n`);
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  const tricky = images.tricky;
  await runClipCli(['pull', tricky.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { timeoutMs: 180_000 });
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), tricky.ref, 'heap-1', 'cat', '/data/keep.txt']);
  t.equal(res.stdout, 'keep\n', 'the container read its lazy layer');
  const pid = snap.fuseServerPid();
  t.ok(pid !== undefined && pid !== snap.pid(), 'a FUSE server of its own serves the lazy layers');
  const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  t.ok(cmdline.includes('--max-old-space-size=192'), `the FUSE server's heap limit is the configured one: ${cmdline.slice(0, 4).join(' ')}`);
  t.notOk(cmdline.some((a) => a.startsWith('--max-old-space-size=') && a !== '--max-old-space-size=192'), 'and no other');
});
