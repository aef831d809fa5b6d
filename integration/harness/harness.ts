/** One private stack per test file: registry, containerd and snapshotter under a temp root. */
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killShimsOf, startContainerd, type Containerd, type ContainerdOptions } from './containerd.js';
import { mountsUnder, unmountAllUnder } from './mounts.js';
import { startRegistry, type Registry, type RegistryOptions, type RegistryTls } from './registry.js';
import { startSnapshotter, type Snapshotter } from './snapshotter.js';
import { startJaeger, type Jaeger } from './jaeger.js';

/** The part of a tap test the harness needs. */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface HarnessStartRegistryOptions {
  /** Directory name under the temp root (default `registry`); give each registry of a test its own. */
  name?: string;
  htpasswd?: { username: string; password: string };
  /** Bearer tokens from a token service (`startTokenServer`). */
  token?: RegistryOptions['token'];
  tls?: RegistryTls;
}

export interface HarnessStartContainerdOptions extends Omit<ContainerdOptions, 'dir'> {
  /** Directory name under the temp root (default `containerd`); one per daemon of a test. */
  dirName?: string;
}

export interface HarnessStartSnapshotterOptions {
  /** Defaults to `<temp>/clip/root` and `<temp>/clip/clip.sock`. */
  root?: string;
  address?: string;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** The test starts the FUSE server itself (SnapshotterOptions.externalFuseServer). */
  externalFuseServer?: boolean;
}

/** Owns a temp root; every service started through it is stopped by `teardown`. */
export class Harness {
  readonly root: string;
  readonly #stops: Array<() => Promise<void>> = [];
  readonly #containerdAddresses: string[] = [];
  #tornDown = false;

  constructor(root: string) {
    this.root = root;
  }

  /** Paths for the default snapshotter instance (short: unix socket paths are limited to 107 bytes). */
  get snapshotterPaths(): { root: string; address: string } {
    return { root: join(this.root, 'clip', 'root'), address: join(this.root, 'clip', 'clip.sock') };
  }

  async startRegistry(opts: HarnessStartRegistryOptions = {}): Promise<Registry> {
    const reg = await startRegistry({ dir: join(this.root, opts.name ?? 'registry'), htpasswd: opts.htpasswd, tls: opts.tls, token: opts.token });
    this.#stops.push(() => reg.stop());
    return reg;
  }

  async startContainerd(opts: HarnessStartContainerdOptions = {}): Promise<Containerd> {
    const { dirName, ...rest } = opts;
    const c = await startContainerd({ dir: join(this.root, dirName ?? 'containerd'), ...rest });
    this.#stops.push(() => c.stop());
    this.#containerdAddresses.push(c.address);
    return c;
  }

  /** Jaeger all-in-one on free loopback ports (in-memory storage). */
  async startJaeger(opts: { uiAssets?: string } = {}): Promise<Jaeger> {
    const j = await startJaeger({ dir: join(this.root, 'jaeger'), ...opts });
    this.#stops.push(() => j.stop());
    return j;
  }

  async startSnapshotter(opts: HarnessStartSnapshotterOptions = {}): Promise<Snapshotter> {
    const s = await startSnapshotter({ ...this.snapshotterPaths, ...opts });
    this.#stops.push(() => s.stop());
    return s;
  }

  /**
   * Last resort when the test process dies before t.teardown runs (setup threw at top level):
   * ManagedProcess's exit hook has already SIGKILLed the services; drop shims, mounts, the temp root.
   */
  teardownSync(): void {
    if (this.#tornDown) return;
    this.#tornDown = true;
    for (const addr of this.#containerdAddresses) killShimsOf(addr);
    for (const m of mountsUnder(this.root)) {
      if (spawnSync('umount', [m.mountPoint]).status !== 0) spawnSync('umount', ['-l', m.mountPoint]);
    }
    if (!process.env.CLIP_KEEP_TEMP) rmSync(this.root, { recursive: true, force: true });
  }

  /** Stop services newest first, unmount everything under the temp root, delete it. Never throws. */
  async teardown(): Promise<string[]> {
    if (this.#tornDown) return [];
    this.#tornDown = true;
    const problems: string[] = [];
    for (const stop of this.#stops.reverse()) {
      try {
        await stop();
      } catch (err) {
        problems.push(err instanceof Error ? err.message : String(err));
      }
    }
    await unmountAllUnder(this.root);
    if (process.env.CLIP_KEEP_TEMP) return problems;
    try {
      rmSync(this.root, { recursive: true, force: true, maxRetries: 3 });
    } catch (err) {
      problems.push(`removing ${this.root}: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (existsSync(this.root)) problems.push(`${this.root} still exists`);
    return problems;
  }
}

/** Make a harness under a fresh temp dir and register its teardown with `t`. */
export function createHarness(t: TeardownHost, prefix = 'clip-e2e-'): Harness {
  const h = new Harness(mkdtempSync(join(tmpdir(), prefix)));
  process.once('exit', () => h.teardownSync());
  t.teardown(async () => {
    const problems = await h.teardown();
    for (const p of problems) process.stderr.write(`harness teardown: ${p}\n`);
  });
  return h;
}
