// The V8 memory flags (cli/node-flags.ts) reach every FUSE server this project starts, and the
// shipped service definitions set the same ones.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { MEMORY_NODE_FLAGS, fuseServerNodeArgs } from '../../src/cli/node-flags.js';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));

t.test('a started FUSE server gets the memory flags after the starter\'s own Node flags', async (t) => {
  t.ok(MEMORY_NODE_FLAGS.some((f) => f.startsWith('--max-semi-space-size=')), 'the young generation is capped');
  t.same(fuseServerNodeArgs(['--enable-source-maps']), ['--enable-source-maps', ...MEMORY_NODE_FLAGS]);
  t.same(fuseServerNodeArgs([]), [...MEMORY_NODE_FLAGS]);
});

t.test('an operator\'s own value wins, on the command line or in NODE_OPTIONS', async (t) => {
  t.same(fuseServerNodeArgs(['--max-semi-space-size=8']), ['--max-semi-space-size=8']);
  t.same(fuseServerNodeArgs([], '--inspect  --max-semi-space-size=4'), []);
  t.same(fuseServerNodeArgs([], '--max-old-space-size=512'), [...MEMORY_NODE_FLAGS], 'another flag does not count');
});

t.test('[fuse_server] max_old_space_mb becomes the started FUSE server\'s heap limit unless the operator set one', async (t) => {
  t.same(fuseServerNodeArgs([], '', 0), [...MEMORY_NODE_FLAGS], '0: V8\'s default');
  t.same(fuseServerNodeArgs([], '', 256), [...MEMORY_NODE_FLAGS, '--max-old-space-size=256']);
  t.same(fuseServerNodeArgs([], '--max-old-space-size=512', 256), [...MEMORY_NODE_FLAGS], 'NODE_OPTIONS wins');
  t.same(fuseServerNodeArgs(['--max-old-space-size=1024'], '', 256), ['--max-old-space-size=1024', ...MEMORY_NODE_FLAGS], 'the starter\'s own flag wins');
});

t.test('the systemd units and the DaemonSet set the same flags in NODE_OPTIONS', async (t) => {
  const expected = MEMORY_NODE_FLAGS.join(' ');
  for (const unit of ['clip-snapshotter.service', 'clip-snapshotter-fuse.service']) {
    const text = readFileSync(`${REPO}plugin-config/${unit}`, 'utf8');
    t.match(text, new RegExp(`^Environment="?NODE_OPTIONS=${expected}"?$`, 'm'), unit);
  }
  const docs = parseAllDocuments(readFileSync(`${REPO}plugin-config/kubernetes/daemonset.yaml`, 'utf8')).map((d) => d.toJS() as {
    metadata: { name: string };
    spec: { template: { spec: { containers: Array<{ name: string; env?: Array<{ name: string; value?: string }> }> } } };
  });
  const containers = docs.flatMap((d) => d.spec.template.spec.containers);
  t.equal(containers.length, 2, 'the FUSE server and the daemon');
  for (const c of containers) t.equal(c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value, expected, c.name);
});
