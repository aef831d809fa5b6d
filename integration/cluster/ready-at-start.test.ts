/**
 * Issue 15 (pull latency): a daemon is ready for a cold node's first pull before it comes. Started
 * in the default deployment (daemon + FUSE server), it starts its FUSE server and the FUSE server
 * connects to the ContentCache before any Prepare; one started with `start = "first_mount"` runs
 * none until its first lazy mount; one whose Redis is down says so and still pulls and runs through
 * the registry.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { startRedis } from '../harness/redis.js';
import { clip, eventually, logRecords, pullAndRun, startClusterNode, startTwoNodeStack } from '../harness/clip-node.js';

t.setTimeout(300_000);

const clipConnections = async (raw: Redis): Promise<number> =>
  ((await raw.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes('name=clip-snapshotter')).length;

t.test('the FUSE server and its ContentCache connection are up before the first Prepare', async (t) => {
  const { ha, hb, registry, images: { tricky } } = await startTwoNodeStack(t, 'clip-ready-');
  const redis = await startRedis(t);
  const raw = new Redis({ port: redis.port, host: '127.0.0.1' });
  t.teardown(() => raw.disconnect());
  t.equal((await clip(['index', tricky.ref, '--plain-http', '--json'])).code, 0, 'index artifact pushed');

  const a = await startClusterNode(ha, 'a', registry, { redisAddresses: [redis.address] });
  t.ok(await eventually(() => a.snap.fuseServerPid() !== undefined), 'node A: a FUSE server runs before any pull');
  t.ok(await eventually(async () => (await clipConnections(raw)) > 0), 'node A: connected to the ContentCache before any pull');
  t.equal(logRecords(a.snap, 'layer mounted lazily').length, 0, 'node A: nothing was mounted yet');
  t.ok(await eventually(() => logRecords(a.snap, 'FUSE server up ahead of the first mount').length > 0), 'node A: the daemon says the FUSE server is up');
  const res = await pullAndRun(a, tricky.ref, ['cat', '/data/keep.txt']);
  t.equal(res.stdout, 'keep\n', 'node A ran the container lazily');
  t.ok(logRecords(a.snap, 'layer mounted lazily').length > 0, 'node A: its layers were mounted lazily');
  t.equal(logRecords(a.snap, 'started a FUSE server').length, 1, 'node A: one FUSE server started, at start (the first mount found it up)');

  // Node B opts out (`start = "first_mount"`), and its Redis is down.
  await redis.stop();
  const b = await startClusterNode(hb, 'b', registry, { redisAddresses: [redis.address], extraToml: '[fuse_server]\nstart = "first_mount"\n' });
  // An absence has no event to wait for: a daemon that starts one logs the spawn within ms of
  // serving (node A above), so 3 s without it is a clear answer.
  await new Promise((r) => setTimeout(r, 3_000));
  t.equal(logRecords(b.snap, 'started a FUSE server').length, 0, 'node B (start = "first_mount"): the daemon started no FUSE server before its first lazy mount');
  t.equal(b.snap.fuseServerPid(), undefined, 'node B: and none runs');
  t.equal((await pullAndRun(b, tricky.ref, ['cat', '/data/keep.txt'])).stdout, 'keep\n', 'node B still pulls and runs through the registry');
  t.ok(b.snap.fuseServerPid() !== undefined, 'node B: its first lazy mount started one');
  t.ok(logRecords(b.snap, 'ContentCache not reachable at start; each use tries again').length > 0, 'node B (Redis down): the FUSE server says the ContentCache is not reachable at its start');
});
