/**
 * Bulk reads at link speed (issue 15, deliverable 3), through containerd: a container reads a
 * large file of a lazy gzip layer whole, with range reads and no background completion, so every
 * byte comes through on-demand span fetches. The read must be byte-exact and its spans must arrive
 * in a few large Range requests (readahead), not one request per span.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli } from '../harness/index.js';
import { pushBigFileImage } from '../images/big-file-image.js';
import { rangeReadNodeConfig } from './range-node-config.js';

t.setTimeout(600_000);

const FILE_MIB = 24;
const SPAN = 256 * 1024;

t.test('a container reading a large lazy file whole gets its spans in a few large Range requests', async (t) => {
  const h = createHarness(t, 'clip-readahead-');
  const registry = await h.startRegistry();
  const { image, payload } = await pushBigFileImage(registry.hostPort, h.root, 'readahead', FILE_MIB);
  const bigDigest = image.layers[1]!.digest;

  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  const config = join(h.root, 'clip-config.toml');
  // No background completion: every byte the container reads is fetched on demand.
  await writeFile(config, rangeReadNodeConfig(c, SPAN));
  await h.startSnapshotter({ extraArgs: ['--config', config] });
  await c.waitForSnapshotter('clip');
  t.equal((await runClipCli(['index', image.ref, '--plain-http', '--config', config], { timeoutMs: 300_000 })).code, 0, 'indexes with checkpoints published');
  const pulled = await runClipCli(['pull', image.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { timeoutMs: 300_000 });
  t.equal(pulled.code, 0, 'pulled');
  const mark = registry.accessLogLines().length;

  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), image.ref, 'readahead-1', 'sha256sum', '/data/big.bin'], { timeoutMs: 300_000 });
  t.equal(res.stdout.split(/\s+/)[0], createHash('sha256').update(payload).digest('hex'), 'the container read the file byte-exact');

  const gets = registry.accessLogLines(`/blobs/${bigDigest}`).slice(0).filter((l) => l.includes('"GET '));
  const after = registry.accessLogLines().slice(mark).filter((l) => l.includes('"GET ') && l.includes(`/blobs/${bigDigest}`));
  t.ok(after.length > 0 && after.every((l) => / 206 /.test(l)), `the layer came by Range requests only (${after.length}; ${gets.length} in all)`);
  const spans = Math.ceil((FILE_MIB << 20) / SPAN);
  t.ok(after.length <= spans / 8, `${after.length} Range requests for a file of ${spans} spans (readahead windows, not a request per span)`);
});
