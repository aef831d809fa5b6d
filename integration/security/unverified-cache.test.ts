/**
 * Issue 12, deliver 2: a byte reaches a container only after a check a writer of Redis cannot
 * forge. Without `[content_cache] key_file` nothing but CRCs (which any writer recomputes) would
 * stand between Redis and every container, so the daemon refuses such a config — with an error
 * naming the file and the keys to set — unless the operator says `allow_unverified = true`; then
 * it starts, says at start-up what that means, and serves containers as before.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHarness, runClipCli } from '../harness/index.js';
import { logRecords, pullAndRun, startClusterNode } from '../harness/clip-node.js';
import { startRedis } from '../harness/redis.js';
import { buildAndPushImages } from '../images/index.js';

t.setTimeout(600_000);

t.test('a Redis ContentCache without a key is refused unless allow_unverified says so', async (t) => {
  const h = createHarness(t, 'clip-unverified-');
  const registry = await h.startRegistry();
  const { busybox } = await buildAndPushImages({ hostPort: registry.hostPort });
  const redis = await startRedis(t);

  // 1. No key_file, no allow_unverified: the daemon does not start, and says why.
  const unkeyed = join(h.root, 'unkeyed.toml');
  await writeFile(unkeyed, `[content_cache]\nbackend = "redis"\naddresses = ["${redis.address}"]\n`);
  const { root, address } = h.snapshotterPaths;
  const refused = await runClipCli(['serve', '--root', root, '--address', address, '--config', unkeyed], { allowFailure: true, timeoutMs: 60_000 });
  t.equal(refused.code, 2, 'serve exits with the config-error status');
  t.match(refused.stderr, `config ${unkeyed}: content_cache.backend = "redis" needs content_cache.key_file`, 'the error names the file and the missing key');
  t.match(refused.stderr, 'content_cache.allow_unverified = true', 'and the explicit way out');
  t.notOk(existsSync(address), 'no socket was opened');
  const index = await runClipCli(['index', busybox.ref, '--plain-http', '--config', unkeyed], { allowFailure: true, timeoutMs: 60_000 });
  t.not(index.code, 0, 'the index command refuses the same config');
  t.match(index.stderr, 'needs content_cache.key_file', 'naming the missing key');

  // 2. allow_unverified = true: it starts, warns, and serves a container through real containerd.
  const n = await startClusterNode(h, 'u', registry, { redisAddresses: [redis.address], allowUnverified: true });
  t.equal((await pullAndRun(n, busybox.ref, ['echo', 'served'])).stdout, 'served\n', 'a container runs');
  // The process that reads Redis (the FUSE server, started with the first lazy mount) says it.
  const warned = logRecords(n.snap, 'ContentCache without key_file (allow_unverified = true): objects are checked by CRC only, so whoever can write to Redis chooses what containers read');
  t.ok(warned.length >= 1, 'the start-up warning says what CRC-only means');
  t.match(logRecords(n.snap, 'ContentCache configured'), [{ backend: 'redis', authenticated: false }], 'the ContentCache is in use, unauthenticated');
});
