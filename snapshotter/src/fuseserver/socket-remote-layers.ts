/**
 * RemoteLayers over the FUSE server socket: the daemon's snapshot state machine mounts, checks and
 * unmounts lazy layers in another process, which keeps serving them while the daemon restarts.
 */
import type { Logger } from '../log/index.js';
import type { IdMapping, RemoteLayers, RemoteMountContext } from '../snapshots/index.js';
import type { FuseServerClient } from './client.js';
import type { ServedLayer } from './protocol.js';

/** Deadlines of each call. A mount may build a missing index (a whole-layer download). */
export interface CallDeadlines {
  mountMs: number;
  checkMs: number;
  unmountMs: number;
  listMs: number;
}

const DEFAULT_DEADLINES: CallDeadlines = { mountMs: 30 * 60_000, checkMs: 60_000, unmountMs: 60_000, listMs: 30_000 };

/** How the layers find their FUSE server. */
export interface ServerPresence {
  /** True when a FUSE server answers now (nothing is started). */
  answers(): Promise<boolean>;
  /** Resolves once one answers, starting one if allowed (only mounts need one). */
  ensure(): Promise<void>;
}

const ALWAYS: ServerPresence = { answers: async () => true, ensure: async () => undefined };

/**
 * Forwards every RemoteLayers call to the FUSE server. A daemon that never mounts a lazy layer
 * never starts one; with none running nothing is served, so listing and unmounting are no-ops.
 */
export class SocketRemoteLayers implements RemoteLayers {
  readonly #client: FuseServerClient;
  readonly #d: CallDeadlines;
  readonly #presence: ServerPresence;

  constructor(client: FuseServerClient, deadlines: Partial<CallDeadlines> = {}, presence: ServerPresence = ALWAYS) {
    this.#client = client;
    this.#d = { ...DEFAULT_DEADLINES, ...deadlines };
    this.#presence = presence;
  }

  async mount(mountpoint: string, labels: Readonly<Record<string, string>>, ctx: RemoteMountContext): Promise<Record<string, string> | undefined> {
    await this.#presence.ensure();
    const r = await this.#client.call('mount', {
      mountpoint,
      labels: { ...labels },
      key: ctx.key,
      restore: ctx.restore,
      ...(ctx.parent !== undefined ? { parent: ctx.parent } : {}),
    }, this.#d.mountMs);
    return r.labels;
  }

  async check(mountpoint: string, labels: Readonly<Record<string, string>>): Promise<void> {
    await this.#client.call('check', { mountpoint, labels: { ...labels } }, this.#d.checkMs);
  }

  async mountMapped(layerMountpoint: string, target: string, ids: IdMapping, _log: Logger): Promise<void> {
    await this.#presence.ensure();
    await this.#client.call('mountMapped', { layerMountpoint, target, uids: [...ids.uids], gids: [...ids.gids] }, this.#d.mountMs);
  }

  async unmount(mountpoint: string): Promise<void> {
    if (!(await this.#presence.answers())) return;
    await this.#client.call('unmount', { mountpoint }, this.#d.unmountMs);
  }

  async localDir(mountpoint: string): Promise<string | undefined> {
    if (!(await this.#presence.answers())) return undefined;
    return (await this.#client.call('localDir', { mountpoint }, this.#d.checkMs)).dir;
  }

  async retire(mountpoint: string): Promise<boolean> {
    if (!(await this.#presence.answers())) return false;
    return (await this.#client.call('retire', { mountpoint }, this.#d.unmountMs)).retired;
  }

  async served(): Promise<string[]> {
    return (await this.mountedLayers()).map((l) => l.mountpoint);
  }

  /** Every mount the FUSE server serves now, layers and id-mapped views. */
  async mountedLayers(): Promise<ServedLayer[]> {
    if (!(await this.#presence.answers())) return [];
    return (await this.#client.call('mounted', {}, this.#d.listMs)).layers;
  }

  /** Count a fallback in the FUSE server's metrics (it owns the metrics endpoint). */
  async recordFallback(code: string): Promise<void> {
    if (!(await this.#presence.answers())) return;
    await this.#client.call('fallback', { code }, this.#d.listMs);
  }
}
