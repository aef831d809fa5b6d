/**
 * A private stack outside tap for the demo and the benchmarks: one temp root, services registered
 * newest first for teardown, and a SIGINT/SIGTERM handler that tears everything down before exit.
 */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness } from './harness.js';
import { killShimsOf, startContainerd, type Containerd } from './containerd.js';
import { mountsUnder } from './mounts.js';
import { startRedis, type RedisServer } from './redis.js';
import { startRegistry, type Registry } from './registry.js';
import { startSnapshotter, type Snapshotter } from './snapshotter.js';

export type { RedisServer } from './redis.js';

/** Owns a temp root and every service started under it. */
export class Stack {
  readonly root: string;
  readonly #harness: Harness;
  readonly #stops: Array<{ what: string; stop: () => Promise<void> }> = [];
  readonly #containerdAddresses: string[] = [];
  #torn = false;

  constructor(prefix: string) {
    this.root = mkdtempSync(join(tmpdir(), prefix));
    // Reused only for its unmount-everything-and-delete teardown of the temp root.
    this.#harness = new Harness(this.root);
    process.once('exit', () => this.#teardownSync());
  }

  /** Register a stop function (run newest first at teardown). */
  add(what: string, stop: () => Promise<void>): void {
    this.#stops.push({ what, stop });
  }

  async registry(name = 'registry'): Promise<Registry> {
    const reg = await startRegistry({ dir: join(this.root, name) });
    this.add(name, () => reg.stop());
    return reg;
  }

  async redis(): Promise<RedisServer> {
    const dir = join(this.root, 'redis');
    mkdirSync(dir, { recursive: true });
    return startRedis({ teardown: (stop) => this.add('redis', async () => void (await stop())) }, {}, dir);
  }

  /** `version`: a containerd 2.x of integration/go-modules.env; absent = Debian's 1.6. */
  async containerd(name: string, snapshotters: Record<string, string>, plainHttpRegistries: string[], version?: string): Promise<Containerd> {
    const c = await startContainerd({ dir: join(this.root, name), snapshotters, plainHttpRegistries, ...(version ? { version } : {}) });
    this.#containerdAddresses.push(c.address);
    this.add(`containerd ${name}`, () => c.stop());
    return c;
  }

  async snapshotter(name: string, extraArgs: string[] = []): Promise<Snapshotter> {
    const dir = join(this.root, name);
    const s = await startSnapshotter({ root: join(dir, 'root'), address: join(dir, 'clip.sock'), logLevel: 'debug', extraArgs });
    this.add(`snapshotter ${name}`, () => s.stop());
    return s;
  }

  /** Stop services newest first, unmount, delete the root; returns problems (never throws). */
  async teardown(): Promise<string[]> {
    if (this.#torn) return [];
    this.#torn = true;
    const problems: string[] = [];
    for (const { what, stop } of this.#stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    for (const addr of this.#containerdAddresses) killShimsOf(addr);
    problems.push(...(await this.#harness.teardown()));
    const left = mountsUnder(this.root).map((m) => m.mountPoint);
    if (left.length > 0) problems.push(`mounts left under ${this.root}: ${left.join(', ')}`);
    if (readFileSync('/proc/self/mountinfo', 'utf8').includes(this.root)) problems.push(`${this.root} still in /proc/self/mountinfo`);
    return problems;
  }

  #teardownSync(): void {
    if (this.#torn) return;
    for (const addr of this.#containerdAddresses) killShimsOf(addr);
    this.#harness.teardownSync();
  }
}

/**
 * Run `main` with the stack torn down afterwards, on failure, and on SIGINT/SIGTERM (then exit 130/143).
 * Returns main's exit code.
 */
export async function withStack(prefix: string, main: (stack: Stack) => Promise<number>): Promise<number> {
  const stack = new Stack(prefix);
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\n${signal}: tearing the stack down…\n`);
    void stack.teardown().then((problems) => {
      report(problems, stack.root);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let code = 1;
  try {
    code = await main(stack);
  } catch (err) {
    // After Ctrl-C the services die under main; its error is a consequence, not news.
    if (!interrupted) process.stderr.write(`\nfailed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    code = 1;
  }
  if (interrupted) return new Promise(() => undefined); // the signal handler exits
  process.stderr.write('tearing the stack down…\n');
  const problems = await stack.teardown();
  report(problems, stack.root);
  return problems.length > 0 && code === 0 ? 1 : code;
}

function report(problems: string[], root: string): void {
  if (problems.length === 0) process.stderr.write(`teardown clean: no processes, no mounts under ${root}, directory removed\n`);
  for (const p of problems) process.stderr.write(`teardown problem: ${p}\n`);
}

