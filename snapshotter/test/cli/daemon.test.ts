// The failure this project exists to prevent: a ContentCache configured but never reaching the
// storage layer. The read path (the FUSE server's, or the daemon's in in_process mode) is assembled
// from a config and its parts are inspected.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openReadPath } from '../../src/cli/read-path.js';
import { parseConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';

async function daemonFrom(t: { teardown(fn: () => unknown): void }, extra: string) {
  const dir = await mkdtemp(join(tmpdir(), 'clip-daemon-wiring-'));
  const cfg = parseConfig(`root = "${dir}/root"\naddress = "${dir}/s.sock"\n${extra}`, 'test.toml');
  const d = await openReadPath(cfg, silentLogger());
  t.teardown(async () => {
    await d.close(silentLogger());
    await rm(dir, { recursive: true, force: true });
  });
  return d;
}

t.test('a Redis ContentCache in the config reaches the layer store', async (t) => {
  // Nothing listens there: the cache connects lazily, so start-up must not depend on it.
  const d = await daemonFrom(t, '[content_cache]\nbackend = "redis"\naddresses = ["127.0.0.1:1"]\nallow_unverified = true\n');
  t.equal(d.contentCache.name, 'redis');
  t.equal(d.store.contentCache.name, 'redis', 'the storage layer that serves reads holds the configured cache');
});

t.test('backend "none" is explicit all the way down', async (t) => {
  const d = await daemonFrom(t, '');
  t.equal(d.store.contentCache.name, 'none');
});
