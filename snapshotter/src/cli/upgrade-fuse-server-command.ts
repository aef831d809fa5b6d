/**
 * `clip-snapshotter upgrade-fuse-server`: replace the running FUSE server by the installed build
 * while containers read — what the systemd unit's `ExecReload=` runs (`systemctl reload
 * clip-snapshotter-fuse` after installing a new build). It starts `fuse-server --take-over` from
 * this command's own launcher (so the new build) in a new session, in the caller's cgroup (the
 * unit's), and returns once the successor serves in the old server's place: the pid file names
 * it and the old server exited. Under systemd the successor has then sent `MAINPID=`/`READY=1`
 * before the old one exited, so the unit neither stopped nor restarted.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Config } from '../config/index.js';
import { unavailable } from '../errors/index.js';
import { socketAnswers } from '../fuseserver/index.js';
import { createLogger } from '../log/index.js';
import { fuseServerAddress } from './fuse-server-address.js';
import { fuseServerNodeArgs } from './node-flags.js';
import { fuseServerPidFile } from './fuse-server-command.js';

/** How long the successor may take to receive every mount, open everything and serve. */
const UPGRADE_DEADLINE_MS = 300_000;
const POLL_MS = 100;

/** The pid in `file`, or undefined when there is none. */
async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True while `pid` exists (a zombie counts until its parent, systemd, reaps it). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Start the successor with `flags` (the config flags this command got) and wait until it replaced
 * the running server. Throws CLIP_FUSE_UPGRADE_FAILED when none runs, the successor exits, or the
 * deadline passes (the successor is then left to finish or fail on its own).
 */
export async function upgradeFuseServer(cfg: Config, flags: string[], opts: { deadlineMs?: number; launcher?: string } = {}): Promise<void> {
  const deadlineMs = opts.deadlineMs ?? UPGRADE_DEADLINE_MS;
  const log = createLogger(cfg.logLevel).child({ process: 'upgrade-fuse-server' });
  const address = fuseServerAddress(cfg);
  const pidFile = fuseServerPidFile(cfg);
  const old = await readPid(pidFile);
  if (old === undefined || !alive(old) || !(await socketAnswers(address))) {
    throw unavailable('CLIP_FUSE_UPGRADE_FAILED', `no FUSE server runs on ${address} (pid file ${pidFile}: ${old ?? 'none'}); start one instead`);
  }
  // This command's own launcher: the build just installed.
  const launcher = opts.launcher ?? process.argv[1];
  if (launcher === undefined) throw unavailable('CLIP_FUSE_UPGRADE_FAILED', 'cannot tell which launcher started this command');
  const args = [launcher, 'fuse-server', '--take-over', ...flags.filter((f) => f !== '--no-spawn-fuse-server')];
  // Its own session: a signal to this command's process group (a reload timing out) never reaches it.
  const child = spawn(process.execPath, [...fuseServerNodeArgs([], process.env['NODE_OPTIONS'], cfg.fuseServer.maxOldSpaceMb), ...args], { detached: true, stdio: ['ignore', 'inherit', 'inherit'] });
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = code !== null ? `exit code ${code}` : `signal ${signal}`));
  child.once('error', (err) => (exited = err.message));
  const successor = child.pid;
  log.info({ old_pid: old, new_pid: successor, launcher }, 'upgrade: successor started; waiting for it to take over');
  const started = Date.now();
  try {
    for (;;) {
      if (exited !== undefined) throw unavailable('CLIP_FUSE_UPGRADE_FAILED', `the new FUSE server (pid ${successor}) ended with ${exited} before taking over; its log says why`);
      if (successor !== undefined && (await readPid(pidFile)) === successor && !alive(old)) break;
      if (Date.now() - started > deadlineMs) throw unavailable('CLIP_FUSE_UPGRADE_FAILED', `the new FUSE server (pid ${successor}) did not replace pid ${old} within ${deadlineMs} ms`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    child.unref();
  }
  log.info({ old_pid: old, new_pid: successor, duration_ms: Date.now() - started }, 'upgrade: the new FUSE server serves in place of the old one');
}
