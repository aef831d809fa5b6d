/** Run a command to completion with a timeout and captured output. */
import { spawn } from 'node:child_process';

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export interface RunOptions {
  timeoutMs?: number;
  /** Resolve instead of throwing when the exit code is not 0. */
  allowFailure?: boolean;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

/** Run `command args…`; throws (with both outputs) on a non-zero exit unless `allowFailure`. */
export function runCommand(command: string, args: string[], opts: RunOptions = {}): Promise<CommandResult> {
  const started = Date.now();
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // A command that never reads stdin may exit first; the EPIPE is not the command's failure.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const result = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), durationMs: Date.now() - started };
      const line = `${command} ${args.join(' ')}`;
      if (timedOut) reject(new Error(`timed out after ${timeoutMs} ms: ${line}\n${result.stderr}`));
      else if (code !== 0 && !opts.allowFailure) reject(new Error(`exit ${code}: ${line}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`));
      else resolve(result);
    });
  });
}
