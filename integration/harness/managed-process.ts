/** A child process whose output goes to a log file, killed by pid when the harness tears down. */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

const live = new Set<number>();

// A crashing test runner skips t.teardown; this still reaps what we started (signals are synchronous).
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Kill `pid` too when the test process exits: for processes our children start that are not our
 * children (the FUSE server the daemon starts in its own session).
 */
export function reapOnExit(pid: number): void {
  live.add(pid);
}

/** Forget a process `reapOnExit` was told about (it was stopped). */
export function forgetReap(pid: number): void {
  live.delete(pid);
}

export interface ManagedProcessOptions {
  command: string;
  args: string[];
  logPath: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** One started child; `stop` sends a signal and waits for exit (SIGKILL after `graceMs`). */
export class ManagedProcess {
  readonly #opts: ManagedProcessOptions;
  #child: ChildProcess;
  #exited: Promise<number | null>;

  constructor(opts: ManagedProcessOptions) {
    this.#opts = opts;
    [this.#child, this.#exited] = this.#spawn();
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Resolves with the exit code (null when killed by a signal). */
  get exited(): Promise<number | null> {
    return this.#exited;
  }

  #spawn(): [ChildProcess, Promise<number | null>] {
    const fd = openSync(this.#opts.logPath, 'a');
    const child = spawn(this.#opts.command, this.#opts.args, {
      stdio: ['ignore', fd, fd],
      env: this.#opts.env ?? process.env,
      cwd: this.#opts.cwd,
    });
    closeSync(fd);
    const pid = child.pid;
    if (pid !== undefined) live.add(pid);
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        if (pid !== undefined) live.delete(pid);
        resolve(code);
      });
      child.once('error', () => resolve(-1));
    });
    return [child, exited];
  }

  /** Send `signal` without waiting. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.#child.kill(signal);
  }

  /** Signal, wait up to `graceMs`, then SIGKILL. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.#child.kill(signal);
    const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** Start the same command again (the previous instance must have exited). */
  respawn(): void {
    if (this.running) throw new Error(`${this.#opts.command} is still running (pid ${this.pid})`);
    [this.#child, this.#exited] = this.#spawn();
  }
}
