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
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { copyInstall, createHarness, runClipCli, waitUntil, type Containerd } from '../harness/index.js';
import { BUSYBOX_PATH, buildAndPushImages } from '../images/index.js';

t.setTimeout(900_000);
let seq = 0;

/** `ctr run --rm`; a run still going after `timeoutMs` is killed and throws (never a pass). */
async function run(c: Containerd, ref: string, cmd: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const res = await c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), ref, `restart-${++seq}`, ...cmd], { allowFailure: true, timeoutMs });
  return { code: res.code ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** Lines a reader wrote: `ok <round> <md5> <md5>` per round, or `FAIL <round> …`. */
async function rounds(path: string): Promise<string[]> {
  return existsSync(path) ? (await readFile(path, 'utf8')).split('\n').filter((l) => l !== '') : [];
}

t.test('reads of running containers survive daemon restarts', async (t) => {
  const h = createHarness(t, 'clip-restart-');
  const registry = await h.startRegistry();
  const images = await buildAndPushImages({ hostPort: registry.hostPort }, ['busybox', 'layered']);
  const c = await h.startContainerd({ snapshotters: { clip: h.snapshotterPaths.address }, plainHttpRegistries: [registry.hostPort] });
  // Checkpoints even for these small layers and no background completion: a layer read only where
  // the containers read it stays incomplete for the whole test, its reads served by range.
  const config = join(h.root, 'clip-config.toml');
  await writeFile(config, [
    `containerd_address = "${c.address}"`, 'containerd_namespace = "clip-test"',
    '[registry]', `config_path = "${c.hostsDir}"`, 'plain_http = true',
    '[index]', 'checkpoint_min_layer_bytes = 0', 'checkpoint_span_bytes = 65536', 'range_completion_bytes_per_sec = 0',
    // The FUSE driver whose connections can be handed to a new FUSE server (step c).
    '[fuse_server]', 'driver = "kernel"',
    '',
  ].join('\n'));
  const snap = await h.startSnapshotter({ extraArgs: ['--config', config] });
  const layered = images.layered;
  const indexed = await runClipCli(['index', layered.ref, '--plain-http', '--json', '--config', config], { allowFailure: true, timeoutMs: 180_000 });
  t.equal(indexed.code, 0, `indexed: ${indexed.stderr.slice(-300)}`);
  const pulled = await runClipCli(['pull', layered.ref, '--address', c.address, '--namespace', 'clip-test', '--snapshotter', 'clip', '--plain-http', '--config', config], { allowFailure: true, timeoutMs: 180_000 });
  t.equal(pulled.code, 0, `pulled lazily: ${pulled.stderr.slice(-300)}`);
  t.equal((JSON.parse(pulled.stdout) as { lazy?: number }).lazy, 2, 'both layers lazy');

  // The bytes a reader must see: the host's busybox binary, and the second layer's file.
  const expected = `${createHash('md5').update(await readFile(BUSYBOX_PATH)).digest('hex')} ${createHash('md5').update('second layer\n').digest('hex')}`;
  const ctl = join(h.root, 'ctl');
  await mkdir(ctl, { recursive: true });
  const script = [
    'i=0',
    'while [ ! -e /ctl/stop ]; do',
    '  i=$((i+1))',
    '  a=$(md5sum /bin/busybox 2>&1) && b=$(md5sum /etc/layered.txt 2>&1)',
    '  if [ $? -eq 0 ]; then echo "ok $i ${a%% *} ${b%% *}" >> /ctl/$NAME; else echo "FAIL $i $a $b" >> /ctl/$NAME; fi',
    '  sleep 0.2',
    'done',
  ].join('\n');
  const readers = ['r1', 'r2'].map((name) =>
    c.ctr(['run', '--rm', '--snapshotter', 'clip', ...c.runcArgs(), '--env', `NAME=${name}`, '--mount', `type=bind,src=${ctl},dst=/ctl,options=rbind:rw`, layered.ref, `reader-${name}`, 'sh', '-c', script], { allowFailure: true, timeoutMs: 840_000 }),
  );
  // Reads reach FUSE: every page of every file is dropped between the readers' rounds.
  let dropping = true;
  const dropper = (async () => {
    while (dropping) {
      await writeFile('/proc/sys/vm/drop_caches', '3');
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  t.teardown(async () => {
    dropping = false;
    await dropper;
  });
  const progressed = async (what: string): Promise<void> => {
    const before = await Promise.all(['r1', 'r2'].map((n) => rounds(join(ctl, n))));
    await waitUntil(`readers make 3 more rounds ${what}`, async () => {
      const now = await Promise.all(['r1', 'r2'].map((n) => rounds(join(ctl, n))));
      return now.every((lines, i) => lines.length >= before[i]!.length + 3);
    }, 120_000, 200);
  };
  await progressed('after starting');
  const status = JSON.parse((await runClipCli(['status', '--address', snap.address, '--json'], { timeoutMs: 30_000 })).stdout) as { layers: Array<{ layer: string; complete: boolean }> };
  const busyboxLayer = status.layers.find((l) => l.layer === layered.layers[0]!.digest);
  t.equal(busyboxLayer?.complete, false, 'the readers run on a layer that is not complete');

  const newContainerStarts = async (what: string): Promise<void> => {
    const out = await run(c, layered.ref, ['cat', '/etc/layered.txt']);
    t.equal(out.stdout, 'second layer\n', `a new container starts ${what}: ${out.stderr.slice(-300)}`);
  };
  const fuseServer = snap.fuseServerPid();
  t.ok(fuseServer !== undefined && fuseServer !== snap.pid(), 'FUSE is served by a process other than the daemon');

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
    await writeFile(join(ctl, 'stop'), '');
    const results = await Promise.all(readers);
    for (const [i, name] of ['r1', 'r2'].entries()) {
      const lines = await rounds(join(ctl, name));
      const bad = lines.filter((l) => !l.startsWith('ok ') || l.split(' ').slice(2).join(' ') !== expected);
      t.ok(lines.length >= 9, `${name} read ${lines.length} rounds`);
      t.same(bad, [], `${name}: no read failed or returned wrong bytes`);
      t.equal(results[i]!.code, 0, `${name} exited cleanly: ${results[i]!.stderr.slice(-300)}`);
    }
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
