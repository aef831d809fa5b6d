/**
 * The snapshot state machine, with containerd overlayfs semantics. States of a snapshot:
 *   active    (Prepare)  → committed (Commit, under a new name, same id and directory)
 *   view      (View)     — read-only, never committed
 *   committed            — may be a parent; removable only without children
 * Remote layers take a shortcut: Prepare with `containerd.io/snapshot.ref` mounts the layer lazily,
 * commits it under the target name at once and answers "already exists".
 */
import { chownSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { access, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  alreadyExists,
  failedPrecondition,
  findClipError,
  invalidArgument,
  isKind,
  messageOf,
  notFound,
} from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { parseFilters } from './filters.js';
import { idMappingFromLabels, type IdMapping } from './id-mapping.js';
import { validateLabels, withoutEmpty } from './labels.js';
import { Metastore, nowNs, type SnapshotRecord } from './metastore.js';
import { mountsUnder, unmount } from './mount-table.js';
import { buildMounts, fsPath } from './mounts.js';
import type { RemoteLayers } from './remote-layers.js';
import { shiftedCopy } from './shifted-copy.js';
import {
  Kind,
  LABEL_PARENT_CHAIN_ID,
  LABEL_REMOTE,
  LABEL_SNAPSHOT_REF,
  type Mount,
  type SnapshotInfo,
  type Usage,
} from './types.js';
import { diskUsage } from './usage.js';

/** What the snapshotter needs to run. */
export interface SnapshotterOptions {
  root: string;
  remote?: RemoteLayers;
  log?: Logger;
  /** Called whenever a lazy mount falls back to an ordinary snapshot: a stable code and the detail. */
  onFallback?: (code: string, message: string) => void;
}

/** A containerd snapshotter over one root directory. */
export class Snapshotter {
  readonly root: string;
  readonly snapshotsDir: string;
  #store: Metastore;
  #indexOff: boolean;
  #remote: RemoteLayers | undefined;
  #log: Logger;
  #onFallback: (code: string, message: string) => void;
  /** Settles when `restoreRemote`'s re-mounts are done. */
  #restoring: Promise<unknown> = Promise.resolve();
  /** Id-translated layer views (path → made), and the ones being made, shared by their users. */
  #views = new Set<string>();
  #making = new Map<string, Promise<void>>();
  /** Lazy mounts of Prepares in flight (mounted, maybe, but not yet recorded): never stale. */
  #prepareMounts = new Set<string>();
  /** The lower choice of each snapshot (see `LowerChoice`), as read from or written to its dir. */
  #choices = new Map<number, LowerChoice>();
  /** Lazy layers some Prepare/View is choosing lower dirs over right now: never retired meanwhile. */
  #choosing = new Map<number, number>();
  /** Retire sweeps run one at a time. */
  #retiring: Promise<void> = Promise.resolve();

  private constructor(o: SnapshotterOptions, store: Metastore, indexOff: boolean) {
    this.root = o.root;
    this.snapshotsDir = join(o.root, 'snapshots');
    this.#store = store;
    this.#indexOff = indexOff;
    this.#remote = o.remote;
    this.#log = o.log ?? silentLogger();
    this.#onFallback = o.onFallback ?? (() => undefined);
  }

  /** Open (creating if needed) the snapshotter at `root`, clearing mounts a dead daemon left behind. */
  static async open(o: SnapshotterOptions): Promise<Snapshotter> {
    await mkdir(join(o.root, 'snapshots'), { recursive: true, mode: 0o700 });
    await mkdir(join(o.root, 'empty'), { recursive: true, mode: 0o755 });
    const store = new Metastore(join(o.root, 'metadata.db'));
    const indexOff = await access('/sys/module/overlay/parameters/index').then(
      () => true,
      () => false,
    );
    const s = new Snapshotter(o, store, indexOff);
    await s.#clearStaleMounts();
    return s;
  }

  /** Create an active snapshot (or, for a lazily served layer, a committed one). */
  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    validateLabels(labels);
    const ids = idMappingFromLabels(labels);
    const target = labels[LABEL_SNAPSHOT_REF];
    if (target && this.#remote && this.#store.get(target)) {
      throw alreadyExists('CLIP_TARGET_EXISTS', `target snapshot "${target}"`);
    }
    const remote = target !== undefined && target !== '' && this.#remote !== undefined && ids === undefined;
    // A layer served lazily is committed by a second transaction within this call: the first need
    // not wait for the disk (one fsync per remote Prepare, not two). If it is not served, the
    // active snapshot containerd is given must be durable before the answer: `flush`.
    const rec = this.#create(key, parent, Kind.Active, labels, ids, remote);
    if (remote) {
      await this.#tryRemote(rec, target, parent, labels);
      this.#store.flush();
    }
    return this.#mountsOfNew(rec);
  }

  /** Create a read-only view of `parent`. */
  async view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    validateLabels(labels);
    const ids = idMappingFromLabels(labels);
    return this.#mountsOfNew(this.#create(key, parent, Kind.View, labels, ids));
  }

  /** The mounts of an active snapshot or view. */
  async mounts(key: string): Promise<Mount[]> {
    const rec = this.#get(key);
    if (rec.kind === Kind.Committed) {
      throw failedPrecondition('CLIP_MOUNTS_COMMITTED', `snapshot "${key}" is committed; mounts need an active snapshot or view`);
    }
    await this.#checkRemoteParents(rec);
    return this.#mountsOf(rec);
  }

  /**
   * Commit an active snapshot under `name`; labels are replaced, not inherited. `parent` (containerd
   * 2.2+ parallel unpack) rebases a snapshot prepared without a parent onto it, as containerd's
   * own snapshotters do; naming a different parent than the one it was prepared on is refused.
   */
  async commit(name: string, key: string, labels: Record<string, string>, parent = ''): Promise<void> {
    validateLabels(labels);
    const before = this.#get(key);
    if (before.kind !== Kind.Active) throw failedPrecondition('CLIP_COMMIT_NOT_ACTIVE', `snapshot "${key}" is not active`);
    const usage = before.remote ? { size: 0, inodes: 0 } : await diskUsage(fsPath(this.snapshotsDir, before.id));
    this.#store.transaction(() => {
      if (this.#store.get(name)) throw alreadyExists('CLIP_NAME_EXISTS', `snapshot "${name}"`);
      const rec = this.#get(key);
      if (rec.kind !== Kind.Active) throw failedPrecondition('CLIP_COMMIT_NOT_ACTIVE', `snapshot "${key}" is not active`);
      const rebaseOnto = parent === '' ? undefined : this.#rebaseTarget(rec, parent);
      this.#store.commit(rec.id, name, withoutEmpty(labels), usage, nowNs());
      if (rebaseOnto !== undefined) this.#store.setParent(rec.id, rebaseOnto);
    });
  }

  /** The id of the parent a Commit names, or undefined when it already is the snapshot's parent. */
  #rebaseTarget(rec: SnapshotRecord, parent: string): number | undefined {
    if (rec.parentId !== null) {
      if (this.#store.getById(rec.parentId)?.key === parent) return undefined;
      throw invalidArgument('CLIP_COMMIT_PARENT_CHANGED', `cannot change parent of active snapshot "${rec.key}" on commit`);
    }
    const p = this.#store.get(parent);
    if (!p) throw notFound('CLIP_PARENT_NOT_FOUND', `parent snapshot "${parent}"`);
    if (p.kind !== Kind.Committed) throw failedPrecondition('CLIP_COMMIT_PARENT_NOT_COMMITTED', `parent "${parent}" is not a committed snapshot`);
    return p.id;
  }

  /** Remove a snapshot without children, its directory and any lazy mount on it. */
  async remove(key: string): Promise<void> {
    const { rec, ancestors } = this.#store.transaction(() => {
      const r = this.#get(key);
      if (this.#store.hasChildren(r.id)) {
        throw failedPrecondition('CLIP_REMOVE_HAS_CHILDREN', `cannot remove snapshot "${key}" with children`);
      }
      const parents = this.#store.parentIds(r);
      this.#store.delete(r.id);
      return { rec: r, ancestors: parents };
    });
    await this.#releaseViews(rec, ancestors);
    if (rec.remote) await this.#remote?.unmount(fsPath(this.snapshotsDir, rec.id));
    this.#choices.delete(rec.id);
    await this.#removeDir(rec.id).catch((err: unknown) =>
      this.#log.warn({ key, err: messageOf(err) }, 'snapshot directory left for cleanup'),
    );
    if (ancestors.some((id) => this.#store.getById(id)?.remote)) void this.retireIdle();
  }

  /** Information about a snapshot by key or committed name. */
  async stat(key: string): Promise<SnapshotInfo> {
    return this.#store.info(this.#get(key));
  }

  /** Update labels: `labels` replaces all, `labels.K` sets or (when empty) deletes one. */
  async update(info: SnapshotInfo, paths: readonly string[]): Promise<SnapshotInfo> {
    return this.#store.transaction(() => {
      const rec = this.#get(info.name);
      let labels = { ...rec.labels };
      if (paths.length === 0) labels = { ...info.labels };
      for (const path of paths) {
        if (path === 'labels') labels = { ...info.labels };
        else if (path.startsWith('labels.')) {
          const k = path.slice('labels.'.length);
          labels[k] = info.labels[k] ?? '';
        } else {
          throw invalidArgument('CLIP_UPDATE_FIELD', `cannot update "${path}" field on snapshot "${info.name}"`);
        }
      }
      labels = withoutEmpty(labels);
      validateLabels(labels);
      this.#store.setLabels(rec.id, labels, nowNs());
      return this.#store.info(this.#get(info.name));
    });
  }

  /** Every snapshot matching any of the filters (containerd's filter syntax). */
  async list(filters: readonly string[]): Promise<SnapshotInfo[]> {
    const match = parseFilters(filters);
    return this.#store
      .all()
      .map((r) => this.#store.info(r))
      .filter(match);
  }

  /** Disk usage: measured now for active snapshots, as recorded at commit otherwise. */
  async usage(key: string): Promise<Usage> {
    const rec = this.#get(key);
    if (rec.kind === Kind.Active && !rec.remote) return diskUsage(fsPath(this.snapshotsDir, rec.id));
    return { size: rec.size, inodes: rec.inodes };
  }

  /** Remove directories no snapshot owns (left by crashes or failed removals). */
  async cleanup(): Promise<void> {
    for (const name of await readdir(this.snapshotsDir)) {
      const n = Number(name);
      const isId = Number.isInteger(n) && String(n) === name;
      // containerd's GC calls Cleanup while Prepares run. A Prepare records its snapshot before it
      // makes the directory, in one synchronous step, so the record is checked and the orphan moved
      // aside in one synchronous step too: a directory made after the listing is never taken.
      if (isId && this.#store.getById(n)) continue;
      const aside = isId ? this.#moveAside(name) : join(this.snapshotsDir, name);
      if (aside === undefined) continue;
      for (const m of await mountsUnder(aside)) await unmount(m.mountPoint);
      await rm(aside, { recursive: true, force: true });
    }
  }

  // Renames an orphaned snapshot directory to a name no id can take; undefined if it is gone.
  #moveAside(name: string): string | undefined {
    const aside = join(this.snapshotsDir, `.removing-${name}-${process.pid}-${Date.now()}`);
    try {
      renameSync(join(this.snapshotsDir, name), aside);
      return aside;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#log.warn({ key: name, err: messageOf(err) }, 'orphaned snapshot directory left for the next cleanup');
      }
      return undefined;
    }
  }

  /**
   * Re-mount every lazily served layer after a restart (or after the FUSE server was replaced by
   * one that serves nothing yet), from the labels recorded at commit; layers the FUSE server still
   * serves are kept as they are. A layer that cannot be mounted stays registered; Mounts on its
   * children then answer UNAVAILABLE.
   */
  restoreRemote(): Promise<{ mounted: number; kept: number; failed: number }> {
    // One at a time: a restore asked for while one runs (a FUSE server replaced mid-restore) starts
    // after it, from what the server serves then, so no layer is mounted twice.
    const run = this.#restoring.then(() => this.#restoreRemote());
    this.#restoring = run.catch(() => undefined);
    return run;
  }

  async #restoreRemote(): Promise<{ mounted: number; kept: number; failed: number }> {
    let mounted = 0;
    let failed = 0;
    // A FUSE server that outlived the daemon still serves these: they are not mounted again (a
    // container reading them never notices the restart). Anything else found mounted is stale.
    // The lazy snapshots as they are now: one a Prepare commits during the restore mounted its own.
    const records = this.#store.all().filter((r) => r.remote);
    const kept = await this.#reconcileMounts();
    let alreadyServed = 0;
    for (const r of records) {
      if (!this.#remote || !this.#store.getById(r.id)) continue;
      if (kept.has(fsPath(this.snapshotsDir, r.id))) continue;
      try {
        const parent = r.parentId === null ? '' : (this.#store.getById(r.parentId)?.key ?? '');
        await this.#remote.mount(fsPath(this.snapshotsDir, r.id), r.labels, { key: r.key, log: this.#log, restore: true, parent });
        mounted++;
      } catch (err) {
        // Mounted meanwhile by the FUSE server it was asked of (a concurrent restore): served.
        if (findClipError(err)?.code === 'CLIP_FUSE_MOUNTED') {
          alreadyServed++;
          continue;
        }
        failed++;
        this.#log.error({ key: r.key, err: messageOf(err) }, 'could not re-mount a lazy layer');
      }
    }
    // Then the id-translated views of user-namespaced containers, over the layers just mounted.
    for (const r of this.#store.all()) {
      if (r.kind === Kind.Committed) continue;
      await this.#mountsOf(r).catch((err: unknown) =>
        this.#log.error({ key: r.key, err: messageOf(err) }, 'could not restore the id-mapped views of a snapshot'),
      );
    }
    // Layers on disk that no container reads over FUSE need no FUSE mount after a restart.
    await this.#retireIdle();
    const keptLayers = [...kept].filter((mp) => !mp.includes('/idmap/') && !this.#prepareMounts.has(mp)).length + alreadyServed;
    return { mounted, kept: keptLayers, failed };
  }

  /**
   * Unmount the FUSE mount of every lazy layer that has an extracted dir and no snapshot using the
   * FUSE mount as a lower dir (containers started before the layer completed keep theirs).
   * Resolves to the number retired.
   */
  retireIdle(): Promise<number> {
    const run = this.#retiring.then(async () => {
      await this.#restoring;
      return this.#retireIdle();
    });
    this.#retiring = run.then(() => undefined, () => undefined);
    return run;
  }

  async #retireIdle(): Promise<number> {
    if (!this.#remote?.retire) return 0;
    // Every recorded choice in memory first, so the check right before each retire has no await.
    for (const r of this.#store.all()) if (r.kind !== Kind.Committed) await this.#choiceOf(r.id);
    let retired = 0;
    for (const r of this.#store.all()) {
      if (!r.remote || this.#choosing.has(r.id) || this.#readsOverFuse(r.id)) continue;
      try {
        if (await this.#remote.retire(fsPath(this.snapshotsDir, r.id))) retired++;
      } catch (err) {
        this.#log.warn({ key: r.key, err: messageOf(err) }, 'could not retire the FUSE mount of a layer on disk');
      }
    }
    return retired;
  }

  /** Durable writes of the metadata database so far (each an fsync): counted by tests. */
  get metadataSyncs(): number {
    return this.#store.durableWrites;
  }

  close(): void {
    this.#store.close();
  }

  #get(key: string): SnapshotRecord {
    const rec = this.#store.get(key);
    if (!rec) throw notFound('CLIP_SNAPSHOT_NOT_FOUND', `snapshot "${key}"`);
    return rec;
  }

  /**
   * Insert the row and create its directories in one transaction: both or neither survive.
   * `deferred`: the caller makes the row durable later (`Metastore.deferredTransaction`).
   */
  #create(key: string, parent: string, kind: Kind, labels: Record<string, string>, ids?: IdMapping, deferred = false): SnapshotRecord {
    const run = <T>(fn: () => T): T => (deferred ? this.#store.deferredTransaction(fn) : this.#store.transaction(fn));
    return run(() => {
      if (this.#store.get(key)) throw alreadyExists('CLIP_KEY_EXISTS', `snapshot "${key}"`);
      let parentId: number | null = null;
      if (parent !== '') {
        const p = this.#store.get(parent);
        if (!p) throw notFound('CLIP_PARENT_NOT_FOUND', `parent snapshot "${parent}"`);
        if (p.kind !== Kind.Committed) throw invalidArgument('CLIP_PARENT_NOT_COMMITTED', `parent "${parent}" is not a committed snapshot`);
        parentId = p.id;
      }
      const at = nowNs();
      const rec = { key, parentId, kind, createdNs: at, updatedNs: at, labels: withoutEmpty(labels), remote: false };
      const id = this.#store.insert(rec);
      const dir = join(this.snapshotsDir, String(id));
      // An id can reappear after a crash rolled back its insert; its directory is then an orphan.
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(join(dir, 'fs'), { recursive: true, mode: 0o755 });
      if (kind === Kind.Active) mkdirSync(join(dir, 'work'), { mode: 0o700 });
      if (ids !== undefined) {
        // As containerd's overlayfs with remap-ids: container root owns the root of its rootfs.
        const root = ids.root();
        chownSync(join(dir, 'fs'), root.uid, root.gid);
        if (kind === Kind.Active) chownSync(join(dir, 'work'), root.uid, root.gid);
      }
      return { ...rec, id, size: 0, inodes: 0 };
    });
  }

  /**
   * Mounts of a snapshot just created, after the same lazy-parent check as Mounts: a stack whose
   * lazy layer no tier can serve answers UNAVAILABLE now rather than EIO inside the container.
   * The new snapshot is removed again on failure, so a failed Prepare leaves nothing behind.
   */
  async #mountsOfNew(rec: SnapshotRecord): Promise<Mount[]> {
    try {
      await this.#checkRemoteParents(rec);
      return await this.#mountsOf(rec, true);
    } catch (err) {
      await this.remove(rec.key).catch((e: unknown) => this.#log.warn({ key: rec.key, err: messageOf(e) }, 'could not remove a snapshot whose parents are unavailable'));
      throw err;
    }
  }

  /**
   * The mounts of a snapshot; a user-namespaced one sees its parents through id-translated views.
   * A lazy parent whose layer is extracted on disk is a plain lower dir for snapshots created after
   * that (`fresh`); what a snapshot was given is recorded, so its mounts never change.
   */
  async #mountsOf(rec: SnapshotRecord, fresh = false): Promise<Mount[]> {
    const parentIds = this.#store.parentIds(rec);
    const ids = this.#translation(rec, parentIds);
    if (ids !== undefined) for (const id of parentIds) await this.#ensureView(id, ids);
    let local: LowerChoice | undefined;
    if (ids === undefined && rec.kind !== Kind.Committed && parentIds.length > 0) {
      local = fresh ? await this.#chooseLowers(rec, parentIds) : await this.#choiceOf(rec.id);
    }
    const lowerPath = ids !== undefined
      ? (id: number) => this.#viewPath(id, ids.key)
      : (id: number) => local?.get(id) ?? fsPath(this.snapshotsDir, id);
    return buildMounts(
      { id: rec.id, kind: rec.kind, parentIds, unpackWithoutParent: rec.labels[LABEL_SNAPSHOT_REF] !== undefined },
      { snapshotsDir: this.snapshotsDir, indexOff: this.#indexOff, emptyDir: join(this.root, 'empty'), lowerPath },
    );
  }

  /** Take each lazy parent's extracted dir where there is one, and record the choice before it is used. */
  async #chooseLowers(rec: SnapshotRecord, parentIds: readonly number[]): Promise<LowerChoice> {
    const lazy = parentIds.filter((id) => this.#store.getById(id)?.remote);
    for (const id of lazy) this.#choosing.set(id, (this.#choosing.get(id) ?? 0) + 1);
    try {
      const choice: LowerChoice = new Map();
      if (this.#remote?.localDir) {
        for (const id of lazy) {
          const dir = await this.#remote.localDir(fsPath(this.snapshotsDir, id));
          if (dir !== undefined) choice.set(id, dir);
        }
      }
      await writeChoice(join(this.snapshotsDir, String(rec.id)), choice);
      this.#choices.set(rec.id, choice);
      if (choice.size > 0) this.#log.info({ key: rec.key, local_lowers: choice.size, lazy_lowers: lazy.length - choice.size }, 'snapshot uses extracted layers as lower dirs');
      return choice;
    } finally {
      for (const id of lazy) {
        const n = (this.#choosing.get(id) ?? 1) - 1;
        if (n > 0) this.#choosing.set(id, n);
        else this.#choosing.delete(id);
      }
    }
  }

  /**
   * Whether some snapshot may have the FUSE mount of lazy layer `layerId` as a lower dir: any
   * active snapshot or view above it without a recorded choice of its extracted dir (user-namespaced
   * ones read id-translated mounts, which the remote refuses to retire under).
   */
  #readsOverFuse(layerId: number): boolean {
    for (const r of this.#store.all()) {
      if (r.kind === Kind.Committed) continue;
      const parents = this.#store.parentIds(r);
      if (!parents.includes(layerId) || this.#translation(r, parents) !== undefined) continue;
      if (!this.#choices.get(r.id)?.has(layerId)) return true;
    }
    return false;
  }

  /** A snapshot's recorded choice; undefined for one made before choices existed (all lazy parents on FUSE). */
  async #choiceOf(id: number): Promise<LowerChoice | undefined> {
    if (this.#choices.has(id)) return this.#choices.get(id);
    const choice = await readChoice(join(this.snapshotsDir, String(id)));
    if (choice !== undefined) this.#choices.set(id, choice);
    return choice;
  }

  /**
   * The mapping to translate a snapshot's parents by: only when every parent is an image layer
   * (committed with `containerd.io/snapshot.ref` by an unpack or lazily), whose files carry the
   * image's ids. Without `remap-ids` declared, containerd sends the labels anyway, on a parent it
   * has chowned itself (committed without that label): translating that again would double-map.
   */
  #translation(rec: SnapshotRecord, parentIds: readonly number[]): IdMapping | undefined {
    const ids = idMappingFromLabelsOrNone(rec.labels);
    if (ids === undefined) return undefined;
    const imageLayers = parentIds.every((id) => this.#store.getById(id)?.labels[LABEL_SNAPSHOT_REF] !== undefined);
    return imageLayers ? ids : undefined;
  }

  #viewPath(id: number, mapKey: string): string {
    return join(this.snapshotsDir, String(id), 'idmap', mapKey);
  }

  /**
   * Make the id-translated view of a committed layer, once per layer and mapping: a second FUSE
   * mount of a lazily served layer, or an id-shifted copy of an on-disk one (containerd's
   * idmapped bind mounts cannot be used: they must cover the whole snapshots tree, and FUSE mounts
   * there refuse them).
   */
  async #ensureView(id: number, ids: IdMapping): Promise<void> {
    const path = this.#viewPath(id, ids.key);
    if (this.#views.has(path)) return;
    let making = this.#making.get(path);
    if (making === undefined) {
      making = this.#makeView(id, ids, path).finally(() => this.#making.delete(path));
      this.#making.set(path, making);
    }
    await making;
  }

  async #makeView(id: number, ids: IdMapping, path: string): Promise<void> {
    const layer = this.#store.getById(id);
    if (!layer) throw notFound('CLIP_PARENT_NOT_FOUND', `parent snapshot ${id}`);
    if (layer.remote && this.#remote) {
      await mkdir(path, { recursive: true, mode: 0o755 });
      await this.#remote.mountMapped(fsPath(this.snapshotsDir, id), path, ids, this.#log);
    } else if (!(await access(path).then(() => true, () => false))) {
      await mkdir(join(this.snapshotsDir, String(id), 'idmap'), { recursive: true, mode: 0o700 });
      await shiftedCopy(fsPath(this.snapshotsDir, id), path, ids);
    }
    this.#views.add(path);
    this.#log.info({ layer_snapshot: layer.key, idmap: ids.key, remote: layer.remote }, 'id-mapped layer view ready');
  }

  /** Drop the views a removed snapshot used that no remaining snapshot with its mapping needs. */
  async #releaseViews(removed: SnapshotRecord, ancestors: readonly number[]): Promise<void> {
    const ids = idMappingFromLabelsOrNone(removed.labels);
    if (ids === undefined) return;
    const stillUsed = new Set<number>();
    for (const r of this.#store.all()) {
      if (r.kind === Kind.Committed) continue;
      const parents = this.#store.parentIds(r);
      if (this.#translation(r, parents)?.key !== ids.key) continue;
      for (const p of parents) stillUsed.add(p);
    }
    for (const id of ancestors) {
      if (stillUsed.has(id)) continue;
      const path = this.#viewPath(id, ids.key);
      this.#views.delete(path);
      if (this.#store.getById(id)?.remote) await this.#remote?.unmount(path);
      await rm(path, { recursive: true, force: true }).catch((err: unknown) =>
        this.#log.warn({ path, err: messageOf(err) }, 'id-mapped view left for cleanup'),
      );
    }
  }

  async #tryRemote(rec: SnapshotRecord, target: string, parent: string, labels: Record<string, string>): Promise<void> {
    const mountpoint = fsPath(this.snapshotsDir, rec.id);
    // A restore reconciling mounts meanwhile (a FUSE server replaced, a restart's background
    // restore) must not take this mount for an orphan between the mount and its commit.
    this.#prepareMounts.add(mountpoint);
    try {
      await this.#tryRemoteAt(mountpoint, rec, target, parent, labels);
    } finally {
      this.#prepareMounts.delete(mountpoint);
    }
  }

  async #tryRemoteAt(mountpoint: string, rec: SnapshotRecord, target: string, parent: string, labels: Record<string, string>): Promise<void> {
    // Parallel unpack (an operator declared `rebase` anyway): a layer above the first comes without
    // its parent, which arrives only at Commit. Committed here it would be parentless, and
    // containerd looks for it with no parent, so it cannot be served lazily: the ordinary path
    // takes it (containerd 2.3+ says so in a label; on 2.2 the remote's chain-ID check refuses it).
    const named = labels[LABEL_PARENT_CHAIN_ID];
    if (rec.parentId === null && named !== undefined) {
      return this.#fallback(rec.key, 'CLIP_LAZY_PARENT_MISSING', `layer ${target} was prepared without its parent ${named.slice(0, 80)} (parallel unpack)`);
    }
    let extra: Record<string, string> | undefined;
    try {
      extra = await this.#remote!.mount(mountpoint, labels, { key: rec.key, log: this.#log, restore: false, parent });
    } catch (err) {
      this.#fallback(rec.key, findClipError(err)?.code ?? 'CLIP_INTERNAL', messageOf(err));
      return;
    }
    if (!extra) return;
    const remoteLabels = { ...labels, ...extra, [LABEL_REMOTE]: 'remote snapshot' };
    try {
      this.#store.transaction(() => {
        if (this.#store.get(target)) throw alreadyExists('CLIP_TARGET_EXISTS', `target snapshot "${target}"`);
        this.#store.commit(rec.id, target, withoutEmpty(remoteLabels), { size: 0, inodes: 0 }, nowNs());
        this.#store.setRemote(rec.id);
      });
    } catch (err) {
      await this.#remote!.unmount(mountpoint);
      if (isKind(err, 'already_exists')) await this.remove(rec.key).catch(() => undefined);
      throw err;
    }
    this.#log.info({ key: rec.key, target }, 'layer mounted lazily');
    throw alreadyExists('CLIP_REMOTE_PREPARED', `target snapshot "${target}"`);
  }

  #fallback(key: string, code: string, reason: string): void {
    this.#log.warn({ key, code, reason }, 'lazy mount fell back to an ordinary snapshot');
    this.#onFallback(code, reason);
  }

  async #checkRemoteParents(rec: SnapshotRecord): Promise<void> {
    if (!this.#remote) return;
    // Right after a start the socket is up before the lazy layers are re-mounted: a parent that is
    // merely not back yet must not answer UNAVAILABLE. (Only Prepare, View and Mounts get here,
    // never the restore itself.)
    await this.#restoring;
    for (const id of this.#store.parentIds(rec)) {
      const p = this.#store.getById(id);
      if (p?.remote) await this.#remote.check(fsPath(this.snapshotsDir, id), p.labels);
    }
  }

  async #removeDir(id: number): Promise<void> {
    const dir = join(this.snapshotsDir, String(id));
    for (const m of await mountsUnder(dir)) await unmount(m.mountPoint);
    await rm(dir, { recursive: true, force: true });
  }

  async #clearStaleMounts(): Promise<void> {
    await this.#reconcileMounts();
  }

  /**
   * Mounts under the snapshots directory: those a surviving FUSE server serves for a lazily served
   * snapshot (or an id-mapped view of one) are kept and returned; the FUSE server's mounts no
   * snapshot claims (a daemon killed between mounting and recording) are unmounted through it;
   * everything else is stale and detached.
   */
  async #reconcileMounts(): Promise<Set<string>> {
    const kept = new Set<string>();
    // The kernel's mounts are listed before the FUSE server is asked what it serves: a mount a
    // Prepare makes and finishes in between then shows up as served, never as stale.
    const mounted = await mountsUnder(this.snapshotsDir);
    let served: Set<string> = new Set();
    if (this.#remote?.served) {
      try {
        served = new Set(await this.#remote.served());
      } catch (err) {
        // Without the list nothing can be kept: every lazy mount is re-made, as after a crash.
        this.#log.warn({ err: messageOf(err) }, 'could not ask the FUSE server what it serves');
      }
    }
    const claimed = new Set<string>();
    for (const r of this.#store.all()) if (r.remote) claimed.add(fsPath(this.snapshotsDir, r.id));
    // Mounts being made right now (a Prepare's layer, an id-mapped view) are not stale either.
    const inFlight = (mp: string): boolean => this.#prepareMounts.has(mp) || this.#making.has(mp);
    const claims = (mp: string): boolean => {
      if (claimed.has(mp) || inFlight(mp)) return true;
      const m = /^(.*)\/idmap\/[0-9a-f]+$/.exec(mp);
      return m !== null && claimed.has(join(m[1]!, 'fs'));
    };
    for (const mp of served) {
      if (!mp.startsWith(`${this.snapshotsDir}/`)) continue;
      if (claims(mp)) {
        kept.add(mp);
        continue;
      }
      this.#log.info({ mount_point: mp }, 'unmounting a FUSE server mount no snapshot claims');
      await this.#remote!.unmount(mp).catch((err: unknown) => this.#log.warn({ mount_point: mp, err: messageOf(err) }, 'unclaimed unmount failed'));
    }
    for (const m of mounted) {
      if (kept.has(m.mountPoint) || inFlight(m.mountPoint)) continue;
      this.#log.info({ mount_point: m.mountPoint, fs_type: m.fsType }, 'unmounting stale mount');
      await unmount(m.mountPoint).catch((err: unknown) => this.#log.warn({ err: messageOf(err) }, 'stale unmount failed'));
    }
    for (const mp of kept) if (mp.includes('/idmap/')) this.#views.add(mp);
    return kept;
  }
}

/** Parent id → the extracted dir a snapshot was given for it; parents not in it are their own `fs`. */
type LowerChoice = Map<number, string>;
const CHOICE_FILE = 'lowers.json';

/** Write (tmp + rename) which parents a snapshot reads from extracted dirs. */
async function writeChoice(dir: string, choice: LowerChoice): Promise<void> {
  const tmp = join(dir, `${CHOICE_FILE}.tmp`);
  await writeFile(tmp, JSON.stringify({ local: Object.fromEntries(choice) }), { mode: 0o600 });
  await rename(tmp, join(dir, CHOICE_FILE));
}

async function readChoice(dir: string): Promise<LowerChoice | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, CHOICE_FILE), 'utf8');
  } catch {
    return undefined;
  }
  // Written by this daemon; anything unreadable counts as "everything on FUSE", the safe side.
  try {
    const parsed = JSON.parse(text) as { local?: Record<string, unknown> };
    const choice: LowerChoice = new Map();
    for (const [k, v] of Object.entries(parsed.local ?? {})) if (typeof v === 'string' && /^\d+$/.test(k)) choice.set(Number(k), v);
    return choice;
  } catch {
    return undefined;
  }
}

/** The mapping of stored labels, which were checked when the snapshot was created. */
function idMappingFromLabelsOrNone(labels: Readonly<Record<string, string>>): IdMapping | undefined {
  try {
    return idMappingFromLabels(labels);
  } catch {
    return undefined;
  }
}
