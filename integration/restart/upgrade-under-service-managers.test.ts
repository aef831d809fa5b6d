/**
 * The FUSE server upgraded in place the way the shipped deployments do it (issue 14, deliverable
 * 5), while two containers read their lazy layers in a loop with the page cache dropped
 * (reader-fixture.ts); no read may fail or return wrong bytes and new containers start.
 *
 * systemd: a REAL systemd (the host's, PID 1 of its own namespaces: harness/systemd.ts) runs the
 * shipped plugin-config/clip-snapshotter-fuse.service (paths pointed at this build). `systemctl
 * start` returns only after the server's READY=1, and MainPID is the server's pid (MAINPID=);
 * after the new build is installed (the unit's binary path re-pointed to a copy of the build),
 * `systemctl reload` hands every mount to the new build, whose server is then the unit's main
 * process in the unit's cgroup, with the same invocation and no restart — which systemd gives
 * only if MAINPID=<new pid> arrived before the old main process exited. `systemctl stop` then
 * sends STOPPING=1 and ends the unit cleanly.
 *
 * Kubernetes: the DaemonSet's surge, without a kubelet: a pod's server (`--take-over=auto
 * --after-hand-over=wait --ready-file`) starts fresh when no server runs; a second one (the new
 * build) takes over beside it; the old one stays alive, not ready, holding no /dev/fuse descriptor,
 * until SIGTERM, then exits 0 and unmounts nothing.
 */
import t from 'tap';
import { readdirSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  copyInstall, mountsUnder, REPO_ROOT, runClipCli, startFuseServerProcess, startSystemd, systemdMissingReason, waitUntil,
  type ManagedProcess, type SystemdNode,
} from '../harness/index.js';
import { startRestartFixture } from './reader-fixture.js';

t.setTimeout(900_000);
const UNIT = 'clip-snapshotter-fuse.service';

/** Lines of the daemon's log that say it restored its layers on a (new) FUSE server. */
const restores = (log: string): string[] => log.split('\n').filter((l) => l.includes('lazy layers restored'));

/** True when `clip-snapshotter ready FILE` (the pod's readiness probe) says ready. */
async function ready(file: string): Promise<boolean> {
  return (await runClipCli(['ready', file], { allowFailure: true, timeoutMs: 30_000 })).code === 0;
}

/** The /dev/fuse descriptors `pid` holds. */
function fuseDescriptors(pid: number): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/fuse') n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

t.test('systemd: `systemctl reload` replaces the FUSE server by the new build, the unit never restarts', async (t) => {
  const missing = systemdMissingReason();
  if (missing !== undefined) {
    t.comment(`skipped: no real systemd can run here: ${missing}`);
    t.plan(0, `no real systemd can run here: ${missing}`);
    return;
  }
  let sd: SystemdNode | undefined;
  let unitLog = '';
  let binLink = '';
  t.teardown(async () => {
    await sd?.systemctl(['stop', UNIT], 90_000).catch(() => undefined);
    await sd?.stop();
  });
  const f = await startRestartFixture(t, 'clip-upgrade-sd-', {
    startFuseServer: async ({ h, root, address, config }) => {
      await mkdir(root, { recursive: true });
      // The install path of the unit: re-pointed to the new build before the reload, as
      // `make install` replaces /usr/local/bin/clip-snapshotter's target.
      const binDir = join(h.root, 'bin');
      await mkdir(binDir, { recursive: true });
      binLink = join(binDir, 'clip-snapshotter');
      await symlink(join(REPO_ROOT, 'snapshotter', 'bin', 'clip-snapshotter'), binLink);
      unitLog = join(h.root, 'fuse-unit.log');
      const shipped = await readFile(join(REPO_ROOT, 'plugin-config', UNIT), 'utf8');
      const unit = shipped
        .replaceAll('/usr/local/bin/clip-snapshotter', `${process.execPath} ${binLink}`)
        .replaceAll('--config /etc/clip-snapshotter/config.toml', `--config ${config} --root ${root} --address ${address} --log-level debug`)
        .replace('[Service]\n', `[Service]\nStandardOutput=append:${unitLog}\nStandardError=inherit\n`)
        // The test's systemd runs none of the host's boot units (harness/systemd.ts).
        .replace('[Unit]\n', '[Unit]\nDefaultDependencies=no\n');
      t.match(unit, /^ExecReload=\S+ \S+ upgrade-fuse-server --config /m, 'the shipped unit, pointed at this build');
      sd = await startSystemd({ dir: join(h.root, 'systemd'), sharedDir: root, units: { [UNIT]: unit } });
      const started = await sd.systemctl(['start', UNIT], 180_000);
      if (started.code !== 0) t.comment((await sd.systemctl(['status', UNIT])).stdout, await readFile(unitLog, 'utf8').catch(() => 'no unit log'));
      t.equal(started.code, 0, `systemctl start returned once the server said READY=1: ${started.stderr.slice(-500)}`);
      const s = await sd.show(UNIT, ['ActiveState', 'SubState', 'MainPID']);
      t.same([s.ActiveState, s.SubState], ['active', 'running'], 'the unit runs');
      const pidFile = Number((await readFile(join(dirname(address), 'fuse-server.pid'), 'utf8')).trim());
      t.equal(Number(s.MainPID), pidFile, 'systemd\'s main process is the FUSE server (MAINPID=)');
    },
  });
  const { h, snap, progressed } = f;
  const node = sd!;

  await t.test('systemctl reload: the new build takes over in the unit', async (t) => {
    const before = await node.show(UNIT, ['MainPID', 'NRestarts', 'InvocationID']);
    const oldHost = node.hostPidOf(UNIT, Number(before.MainPID));
    t.ok(oldHost, `the old main process (${before.MainPID} in systemd's namespace) is in the unit's cgroup`);
    const install = join(h.root, 'new-install');
    await copyInstall(install);
    await rm(binLink);
    await symlink(join(install, 'snapshotter', 'bin', 'clip-snapshotter'), binLink);
    const restored = restores(snap.log()).length;
    const reload = await node.systemctl(['reload', UNIT], 360_000);
    t.equal(reload.code, 0, `systemctl reload succeeded: ${reload.stderr.slice(-500)}`);
    const after = await node.show(UNIT, ['MainPID', 'NRestarts', 'InvocationID', 'ActiveState', 'SubState']);
    t.not(after.MainPID, before.MainPID, `systemd follows the new main process (${before.MainPID} → ${after.MainPID})`);
    t.equal(after.NRestarts, before.NRestarts, 'the unit was never restarted');
    t.equal(after.InvocationID, before.InvocationID, 'the same invocation: never stopped either');
    t.same([after.ActiveState, after.SubState], ['active', 'running']);
    const newHost = node.hostPidOf(UNIT, Number(after.MainPID));
    t.ok(newHost, 'the new main process is in the unit\'s cgroup');
    t.notOk(node.hostPids(UNIT).includes(oldHost!), 'the old server has left');
    const maps = await readFile(`/proc/${newHost}/maps`, 'utf8');
    t.ok(maps.includes(join(install, 'snapshotter', 'native')), 'the new main process runs the new build (its addon is loaded from there)');
    const log = await readFile(unitLog, 'utf8');
    t.match(log, new RegExp(`"notification":"MAINPID=${after.MainPID} READY=1`), 'the successor sent MAINPID=<its pid> and READY=1');
    t.match(log, /FUSE server handed over; exiting/, 'the old server exited after handing over');
    await progressed('after the reload');
    await waitUntil('the daemon re-attached to the new FUSE server', async () => restores(snap.log()).length > restored, 120_000);
    t.match(restores(snap.log()).slice(restored).join('\n'), /"kept":2/, 'the daemon kept both layers, mounting none again');
    await f.newContainerStarts(t, 'after systemctl reload');
  });

  await t.test('readers saw every byte right', async (t) => {
    await f.finishReaders(t);
  });

  await t.test('systemctl stop: STOPPING=1, a clean stop, every layer unmounted', async (t) => {
    const stopped = await node.systemctl(['stop', UNIT], 120_000);
    t.equal(stopped.code, 0, `systemctl stop: ${stopped.stderr.slice(-300)}`);
    const s = await node.show(UNIT, ['ActiveState', 'Result', 'ExecMainCode', 'ExecMainStatus', 'ExecMainPID']);
    if (s.Result !== 'success') t.comment(JSON.stringify(s), (await node.systemctl(['status', UNIT])).stdout);
    t.same([s.ActiveState, s.Result], ['inactive', 'success']);
    t.match(await readFile(unitLog, 'utf8'), /"notification":"STOPPING=1/, 'the server told systemd it is stopping');
    t.same(mountsUnder(snap.root).filter((m) => m.fsType.startsWith('fuse')), [], 'no FUSE mount left');
  });
});

t.test('Kubernetes surge: a new pod takes over beside the old one, which idles until SIGTERM', async (t) => {
  let pod1: ManagedProcess | undefined;
  let pod2: ManagedProcess | undefined;
  t.teardown(async () => {
    await pod1?.stop('SIGTERM', 20_000);
    await pod2?.stop('SIGTERM', 20_000);
  });
  const podArgs = (config: string, dir: string): string[] => ['--config', config, '--take-over=auto', '--after-hand-over=wait', '--ready-file', join(dir, 'ready')];
  let pod1Dir = '';
  const f = await startRestartFixture(t, 'clip-upgrade-k8s-', {
    startFuseServer: async ({ h, root, address, config }) => {
      pod1Dir = join(h.root, 'pod1');
      await mkdir(pod1Dir, { recursive: true });
      await mkdir(root, { recursive: true });
      // A stale ready file of an earlier container of the pod must not make it ready early.
      await writeFile(join(pod1Dir, 'ready'), `${process.pid}\n`);
      pod1 = startFuseServerProcess({ root, address, args: podArgs(config, pod1Dir), logPath: join(pod1Dir, 'log') });
      await waitUntil('the first pod is ready', async () => {
        if (!pod1!.running) throw new Error(`pod1 exited: ${(await readFile(join(pod1Dir, 'log'), 'utf8')).slice(-2000)}`);
        return (await readFile(join(pod1Dir, 'log'), 'utf8')).includes('FUSE server serving') && (await ready(join(pod1Dir, 'ready')));
      }, 60_000);
      t.match(await readFile(join(pod1Dir, 'log'), 'utf8'), /no FUSE server answers; starting fresh/, '--take-over=auto with no server running starts fresh');
    },
  });
  const { h, snap, progressed, config } = f;

  await t.test('the surge pod (new build) takes over; the old one idles, not ready, holding nothing', async (t) => {
    const install = join(h.root, 'new-install');
    await copyInstall(install);
    const pod2Dir = join(h.root, 'pod2');
    await mkdir(pod2Dir, { recursive: true });
    const restored = restores(snap.log()).length;
    pod2 = startFuseServerProcess({ root: snap.root, address: snap.address, args: podArgs(config, pod2Dir), logPath: join(pod2Dir, 'log'), installDir: install });
    await waitUntil('the surge pod is ready', async () => {
      if (!pod2!.running) throw new Error(`pod2 exited: ${(await readFile(join(pod2Dir, 'log'), 'utf8')).slice(-2000)}`);
      return ready(join(pod2Dir, 'ready'));
    }, 120_000);
    t.match(await readFile(join(pod2Dir, 'log'), 'utf8'), /"adopted":2/, 'the surge pod adopted both layer mounts');
    await waitUntil('the old pod handed over and idles', async () => (await readFile(join(pod1Dir, 'log'), 'utf8')).includes('waiting idle for SIGTERM'), 60_000);
    t.equal(pod1!.running, true, 'the old pod\'s server is still running (its container does not exit)');
    t.equal(await ready(join(pod1Dir, 'ready')), false, 'the old pod is not ready any more');
    t.equal(fuseDescriptors(pod1!.pid!), 0, 'the old server holds no /dev/fuse connection');
    t.ok(fuseDescriptors(pod2!.pid!) >= 2, 'the new server holds the connections');
    await progressed('after the surge pod took over');
    await waitUntil('the daemon re-attached to the new FUSE server', async () => restores(snap.log()).length > restored, 120_000);
    t.match(restores(snap.log()).slice(restored).join('\n'), /"kept":2/, 'the daemon kept both layers, mounting none again');
    await f.newContainerStarts(t, 'after the surge take-over');
  });

  await t.test('the kubelet deletes the old pod: SIGTERM, exit 0, nothing unmounted', async (t) => {
    const fuseMounts = (): string[] => mountsUnder(snap.root).filter((m) => m.fsType.startsWith('fuse')).map((m) => m.mountPoint).sort();
    const mounts = fuseMounts();
    t.ok(mounts.length >= 2, `the layers are mounted (${mounts.length})`);
    await pod1!.stop('SIGTERM', 20_000);
    t.equal(await pod1!.exited, 0, 'the old server exited 0');
    t.same(fuseMounts(), mounts, 'every FUSE mount is still there');
    await progressed('after the old pod stopped');
    await f.newContainerStarts(t, 'after the old pod stopped');
  });

  await t.test('readers saw every byte right', async (t) => {
    await f.finishReaders(t);
  });
});
