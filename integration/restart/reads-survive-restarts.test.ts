/**
 * Running containers outlive the daemon (issue 14, "Done when"): containers read files of their
 * lazy layers in a loop while the page cache is dropped between rounds (so reads reach FUSE), one
 * of them on a layer that is never completed (range reads, background completion off). Meanwhile
 * the daemon is (a) SIGKILLed and restarted, (b) restarted with SIGTERM as systemd does; no read
 * may fail or return wrong bytes, and new containers start after each step; (c) the FUSE server
 * is replaced by a new build (a copy of this build in another directory, `fuse-server
 * --take-over`): the running one hands every mount and its /dev/fuse connection over (kernel FUSE
 * driver), the same rules hold and the daemon mounts nothing again. Then (d) the FUSE server is
 * SIGKILLed: that is a crash, not a hand-over (README "State, restarts, crashes"), so the readers
 * are stopped first and the test checks what does hold — the daemon starts a new FUSE server,
 * mounts every layer again, and new containers start.
 */
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { copyInstall, waitUntil } from '../harness/index.js';
import { startRestartFixture } from './reader-fixture.js';
import { MEMORY_NODE_FLAGS } from '../../snapshotter/src/cli/node-flags.js';

t.setTimeout(900_000);

t.test('reads of running containers survive daemon restarts', async (t) => {
  const { h, c, snap, progressed, newContainerStarts: starts, finishReaders } = await startRestartFixture(t, 'clip-restart-');
  const newContainerStarts = (what: string): Promise<void> => starts(t, what);
  const fuseServer = snap.fuseServerPid();
  t.ok(fuseServer !== undefined && fuseServer !== snap.pid(), 'FUSE is served by a process other than the daemon');
  // Memory: the FUSE server the daemon started runs with the V8 flags that keep it small.
  const cmdline = (await readFile(`/proc/${fuseServer}/cmdline`, 'utf8')).split('\0');
  for (const f of MEMORY_NODE_FLAGS) t.ok(cmdline.includes(f), `the FUSE server runs with ${f}`);

  await t.test('(a) daemon SIGKILLed and restarted', async (t) => {
    await snap.kill('SIGKILL');
    await progressed('with the daemon dead');
    await snap.restart();
    await c.waitForSnapshotter('clip');
    await progressed('after the restart');
    t.equal(snap.fuseServerPid(), fuseServer, 'the same FUSE server serves on');
    t.match(snap.log(), /"kept":2/, 'the restarted daemon kept both layers, mounting none again');
    await newContainerStarts('after SIGKILL');
  });

  await t.test('(b) daemon restarted with SIGTERM, as systemd does', async (t) => {
    await snap.restart();
    await c.waitForSnapshotter('clip');
    await progressed('after the SIGTERM restart');
    t.equal(snap.fuseServerPid(), fuseServer, 'the same FUSE server serves on');
    await newContainerStarts('after SIGTERM');
  });

  await t.test('(c) the FUSE server replaced by a new build while the containers read', async (t) => {
    const install = join(h.root, 'new-install');
    await copyInstall(install);
    const restores = (): string[] => snap.log().split('\n').filter((l) => l.includes('lazy layers restored'));
    const before = restores().length;
    const next = await snap.replaceFuseServer(install);
    t.not(next, fuseServer, 'another process serves FUSE now');
    await progressed('after the hand-over');
    const takeoverLog = await readFile(join(dirname(snap.address), 'fuse-takeover-1.log'), 'utf8').catch(() => '');
    t.match(takeoverLog, /"adopted":2/, 'the new FUSE server adopted both layer mounts');
    await waitUntil('the daemon re-attached to the new FUSE server', async () => restores().length > before, 120_000);
    t.match(restores().slice(before).join('\n'), /"kept":2/, 'the daemon kept both layers, mounting none again');
    await newContainerStarts('after the hand-over');
  });

  await t.test('readers saw every byte right', async (t) => {
    await finishReaders(t);
  });

  await t.test('(c2) the old FUSE server SIGKILLed during a hand-over: consistent either way, new containers start', async (t) => {
    // Whether the kill lands before or after the old server sent every mount is timing: before,
    // the successor gives up and the daemon restores on a new FUSE server; after, the successor
    // serves on. Either way a FUSE server serves every layer and new containers start.
    const install = join(h.root, 'new-install');
    const old = snap.fuseServerPid();
    const restores = (): number => snap.log().split('\n').filter((l) => l.includes('lazy layers restored')).length;
    const before = restores();
    const next = snap.startTakeOver(install);
    await waitUntil('the successor asked for the hand-over', async () => next.log().includes('asked the running FUSE server') || next.exited() !== undefined, 60_000, 5);
    if (old !== undefined) process.kill(old, 'SIGKILL');
    await waitUntil('the successor took over or gave up', async () => snap.fuseServerPid() === next.pid || next.exited() !== undefined, 120_000);
    await waitUntil('a FUSE server serves after the kill, the daemon re-attached', async () => {
      const pid = snap.fuseServerPid();
      return pid !== undefined && pid !== old && restores() > before;
    }, 120_000);
    const tookOver = snap.fuseServerPid() === next.pid;
    t.comment(`successor ${tookOver ? 'took over' : `gave up (${next.exited()})`}`);
    if (!tookOver) t.match(next.log(), /CLIP_FUSE_HANDOVER_FAILED|CLIP_FUSE_SERVER_RUNNING/, 'the successor says why it gave up');
    t.notMatch(snap.log().split('\n').slice(-200).join('\n'), /could not re-mount/, 'every layer served again');
    await newContainerStarts('after a hand-over cut short by SIGKILL');
  });

  await t.test('(d) the FUSE server killed: a new one serves every layer again, new containers start', async (t) => {
    const restores = (): number => snap.log().split('\n').filter((l) => l.includes('lazy layers restored')).length;
    const before = restores();
    const killed = snap.fuseServerPid();
    await snap.killFuseServer('SIGKILL');
    await waitUntil('the daemon restored its layers on a new FUSE server', async () => restores() > before, 120_000);
    const next = snap.fuseServerPid();
    t.ok(next !== undefined && next !== killed, 'a new FUSE server runs');
    t.notMatch(snap.log().split('\n').slice(-200).join('\n'), /could not re-mount/, 'every layer mounted again');
    await newContainerStarts('on the new FUSE server');
  });
});
