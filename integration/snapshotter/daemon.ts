/** Start our daemon on a private root for tests that drive it directly (no containerd). */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, access, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../snapshotter/bin/clip-snapshotter', import.meta.url));

export interface Daemon {
  root: string;
  socket: string;
  proc: ChildProcess;
  logPath: string;
}

/** Spawn `clip-snapshotter serve` and wait for its socket. */
export async function startDaemon(root: string, socket: string, extraArgs: string[] = []): Promise<Daemon> {
  await rm(socket, { force: true });
  const logPath = join(root, '..', 'daemon.log');
  const log = await open(logPath, 'a');
  // `env -u`: tap's process tracking injects its loader into node children; the daemon must start
  // exactly as in production.
  const proc = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, 'serve', '--root', root, '--address', socket, '--log-level', 'debug', ...extraArgs], {
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`daemon exited with ${proc.exitCode}; see ${logPath}`);
    if (await access(socket).then(() => true, () => false)) return { root, socket, proc, logPath };
    if (Date.now() > deadline) throw new Error(`daemon socket ${socket} did not appear; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Stop a daemon with a signal and wait for it to exit. */
export async function stopDaemon(d: Daemon, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (d.proc.exitCode !== null || d.proc.signalCode !== null) return d.proc.exitCode;
  const exited = new Promise<number | null>((r) => d.proc.once('exit', (code) => r(code)));
  d.proc.kill(signal);
  return exited;
}

/** A temp dir holding `root/` and the socket. */
export async function tempDaemonDir(): Promise<{ dir: string; root: string; socket: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'clip-daemon-'));
  return { dir, root: join(dir, 'root'), socket: join(dir, 's.sock'), cleanup: () => rm(dir, { recursive: true, force: true }) };
}
