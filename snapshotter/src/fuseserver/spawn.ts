/**
 * Finding or starting the FUSE server. A started one runs in its own session and process group
 * (setsid), holds no pipe to the daemon and is not waited for, so neither the daemon's exit nor a
 * signal to the daemon's process group reaches it.
 */
import { spawn } from 'node:child_process';
import { unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { socketAnswers } from './server.js';

/** How to find and, if allowed, start the FUSE server. */
export interface EnsureOptions {
  address: string;
  /** Start one when none answers; otherwise wait for one (a service manager starts it). */
  spawn: boolean;
  /** The command that starts it: node's executable and its arguments. */
  command: string;
  args: string[];
  log: Logger;
  /** Bound on waiting for its socket. Default 60 s. */
  timeoutMs?: number;
}

/** Resolves once a FUSE server answers on `address`; returns the pid it started, if it started one. */
export async function ensureFuseServer(o: EnsureOptions): Promise<number | undefined> {
  if (await socketAnswers(o.address)) return undefined;
  let pid: number | undefined;
  let exited: string | undefined;
  if (o.spawn) {
    // stderr is shared (a log file or journald stream outlives the daemon); stdin and stdout are not.
    const child = spawn(o.command, o.args, { detached: true, stdio: ['ignore', 'ignore', 'inherit'] });
    pid = child.pid;
    child.once('exit', (code, signal) => {
      exited = `exited with ${code ?? signal}`;
    });
    child.unref();
    o.log.info({ fuse_server_pid: pid, address: o.address }, 'started a FUSE server');
  } else {
    o.log.info({ address: o.address }, 'waiting for the FUSE server');
  }
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  for (;;) {
    if (await socketAnswers(o.address)) return pid;
    if (exited !== undefined) throw unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `the FUSE server started for ${o.address} ${exited}`);
    if (Date.now() > deadline) throw unavailable('CLIP_FUSE_SERVER_UNREACHABLE', `no FUSE server answers on ${o.address}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
