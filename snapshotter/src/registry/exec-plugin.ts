/**
 * Runs a credential plugin (a docker credential helper, a kubelet credential provider): no shell,
 * a deadline, bounded output. Plugin output carries secrets, so no error message here ever quotes
 * what the plugin printed — only its name, exit status and what went wrong.
 */
import { spawn } from 'node:child_process';
import { ClipError } from '../errors/index.js';

export interface PluginRun {
  /** Executable path, or a bare name looked up in PATH. */
  command: string;
  args: string[];
  stdin: string;
  /** Environment for the plugin; defaults to the daemon's. */
  env?: NodeJS.ProcessEnv;
  /** The plugin is killed (SIGKILL) and the run fails after this long. */
  timeoutMs: number;
  /** More stdout than this kills the plugin and fails the run. */
  maxOutputBytes: number;
  /** How errors name the plugin (e.g. `credential helper docker-credential-pass`). */
  what: string;
}

export interface PluginResult {
  code: number;
  stdout: string;
}

const MAX_STDERR_BYTES = 64 * 1024;

/** Run a plugin to completion; resolves with its exit code and stdout, rejects with a ClipError. */
export function runPlugin(run: PluginRun): Promise<PluginResult> {
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(run.command, run.args, { stdio: ['pipe', 'pipe', 'pipe'], env: run.env ?? process.env });
    } catch (err) {
      reject(new ClipError('unavailable', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED', `${run.what}: cannot start`, { cause: err }));
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let failure: ClipError | undefined;
    const fail = (err: ClipError): void => {
      failure ??= err;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => fail(new ClipError('unavailable', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_TIMEOUT', `${run.what}: no answer within ${run.timeoutMs} ms (killed)`)),
      run.timeoutMs,
    );
    child.stdout.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > run.maxOutputBytes) {
        fail(new ClipError('data_corrupt', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT', `${run.what}: printed more than ${run.maxOutputBytes} bytes (killed)`));
        return;
      }
      chunks.push(c);
    });
    // stderr is drained (a full pipe would block the plugin) but never read into a message.
    let stderrBytes = 0;
    child.stderr.on('data', (c: Buffer) => {
      stderrBytes += c.length;
      if (stderrBytes > MAX_STDERR_BYTES) fail(new ClipError('data_corrupt', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT', `${run.what}: wrote more than ${MAX_STDERR_BYTES} bytes to stderr (killed)`));
    });
    child.stdin.on('error', () => undefined); // a plugin that exits without reading stdin is judged by its exit status
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' ? 'not found' : err.code === 'EACCES' ? 'not executable' : `cannot start (${err.code ?? 'error'})`;
      reject(failure ?? new ClipError('unavailable', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED', `${run.what}: ${why}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) reject(failure);
      else if (code === null) reject(new ClipError('unavailable', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED', `${run.what}: killed by ${signal ?? 'a signal'}`));
      else resolve({ code, stdout: Buffer.concat(chunks).toString('utf8') });
    });
    child.stdin.end(run.stdin);
  });
}

/** A plugin's run that ended badly; never quotes its output. */
export function pluginFailed(what: string, why: string): ClipError {
  return new ClipError('unavailable', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_FAILED', `${what}: ${why}`);
}

/** A plugin answered something this client cannot use. */
export function pluginBadOutput(what: string, why: string): ClipError {
  return new ClipError('data_corrupt', 'CLIP_REGISTRY_CREDENTIAL_PLUGIN_OUTPUT', `${what}: ${why}`);
}
