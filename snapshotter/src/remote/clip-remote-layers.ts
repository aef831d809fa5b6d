import { createHash } from 'node:crypto';
import { closeSync } from 'node:fs';
/**
 * The lazy side of the snapshotter: turns a Prepare's labels into a mounted FUSE layer. Label
 * dialect → image and layer → clip index → read path (LayerStore) → LayerFilesystem.
 */
import { encodeIndex, type ClipIndexReader, type ClipLimits } from '../clip/index.js';
import { dataCorrupt, failedPrecondition, findClipError, messageOf, notFound, unavailable } from '../errors/index.js';
import { LayerFilesystem, type FuseDriver, type HandedMount, type IdTranslation, type IndexView } from '../fuse/index.js';
import type { Negotiated } from '../fuse/kernel/wire.js';
// The module itself, not the package index: that loads the metadata store (better-sqlite3), which the FUSE server never uses.
import { IdMapping, type IdRange } from '../snapshots/id-mapping.js';
import type { Logger } from '../log/index.js';
import type { RemoteLayers, RemoteMountContext } from '../snapshots/remote-layers.js';
import type { LayerReader, LayerRef, LayerStore, QuarantineList, ReadActivitySink } from '../storage/index.js';
import { StartTraceReader } from './start-trace-reader.js';
import {
  ATTR_CLIP_INDEX_SOURCE,
  ATTR_CLIP_LAYER_DIFF_ID,
  ATTR_CLIP_LAYER_DIGEST,
  ATTR_CLIP_SNAPSHOT_KEY,
  SPAN_FUSE_MOUNT,
  SPAN_INDEX_RESOLVE,
  SPAN_LAYER_PREPARE,
  recordVerificationFailure,
  setMountedLayers,
  withSpan,
  type StartTraces,
} from '../telemetry/index.js';
import { checkChainId } from './chain-id-check.js';
import { checkIndexAgainstLayer } from './index-check.js';
import type { IndexResolver, IndexSource } from './index-resolver.js';
import { RevocableReader } from './revocable-reader.js';
import { LruMap } from '../util/lru-map.js';
import type { StartProfiles } from '../prefetch/index.js';
import {
  LABEL_CLIP_DIFF_ID,
  LABEL_CLIP_IMAGE_REF,
  LABEL_CLIP_LAYER_DIGEST,
  imageLayersFromLabels,
  layerHintFromLabels,
  type LayerHint,
} from './layer-labels.js';

/** A layer found in containerd's content store from its chain ID alone. */
export interface ChainLayer {
  ref: string;
  layerDigest: string;
  manifestDigest?: string;
}
/** Looks a chain ID up in containerd's content store for the key's namespace. */
export type ChainResolver = (chainId: string, namespace: string) => Promise<ChainLayer | undefined>;

export interface ClipRemoteLayersOptions {
  store: Pick<LayerStore, 'open'> & Partial<Pick<LayerStore, 'presence' | 'onLayerComplete' | 'extracted' | 'openComplete' | 'isQuarantined'>>;
  indexes: Pick<IndexResolver, 'resolve' | 'local'> & Partial<Pick<IndexResolver, 'verified' | 'replace' | 'prefetch'>>;
  /**
   * Check every index this node did not build against its layer once the layer is complete on disk
   * (`index-check.ts`; needs the store's `presence`, `onLayerComplete` and `openComplete`). Default true.
   */
  checkIndexes?: boolean;
  /** Where an index that failed the check is recorded (by digest), so no source serves it again. */
  quarantine?: Pick<QuarantineList, 'add'>;
  /** Bounds for the check's rebuild (`[index] max_*`). */
  limits?: Partial<ClipLimits>;
  resolveChain?: ChainResolver;
  /** containerd namespace for keys that carry none. */
  defaultNamespace: string;
  /** Prefetch from and record into start profiles (`[prefetch]`); absent = neither. */
  profiles?: Pick<StartProfiles, 'attach'>;
  /** Reads of a layer mounted inside a start trace join that trace while it is open. */
  starts?: StartTraces;
  /**
   * Extract every mounted layer to an ordinary directory once it is complete on disk (needs the
   * store's `presence`, `onLayerComplete` and `extracted`); `onExtracted` hears of each, by mount point.
   */
  extractCompleted?: boolean;
  onExtracted?: (mountpoint: string) => void;
  /** The FUSE implementation of new mounts (`[fuse_server] driver`). Default libfuse. */
  fuseDriver?: FuseDriver;
  /** Told of every FUSE request of every mount: the store's background work yields to them (`LayerStore.readActivity`). */
  readActivity?: ReadActivitySink;
}

/**
 * One mount as it crosses from a FUSE server to its successor (`handOver`/`adopt`), beside its
 * /dev/fuse descriptor. The index is named by digest: the successor loads the same bytes from the
 * local index cache, so the node ids the kernel holds mean the same rows.
 */
export interface HandoverMount {
  mountpoint: string;
  /** An id-mapped view: the layer mount it shows, and its id ranges. */
  mappedFrom?: string;
  uids?: IdRange[];
  gids?: IdRange[];
  layer: { ref: string; digest: string; diffId: string };
  indexDigest: string;
  trusted: boolean;
  /** INIT parameters of its connection; absent for a retired layer (no FUSE connection). */
  negotiated?: Negotiated;
}

/** One mount a ClipRemoteLayers serves (`served`). */
export interface ServedMount {
  mountpoint: string;
  /** For an id-mapped view: the layer mount it shows. */
  mappedFrom?: string;
  layer: { ref: string; digest: string; diffId: string; uncompressedSize: number };
}

interface Mounted {
  /** Undefined once retired: the layer is served from its extracted dir only. */
  fs: LayerFilesystem | undefined;
  reader: RevocableReader | undefined;
  view: IndexView;
  /** The same index as `view`, for the check against the completed layer. */
  index: ClipIndexReader;
  /** sha256 hex of the index's bytes. */
  indexDigest: string;
  source: IndexSource;
  /** Built here or checked against the completed layer. */
  trusted: boolean;
  ref: LayerRef;
  hex: string;
  /**
   * Names its extracted dir: the diffID *and* the index it was extracted through. Names, modes and
   * sizes come from the index, which is not trusted; two indexes claiming one diffID never share a dir.
   */
  extractKey: string;
  log: Logger;
}

/** RemoteLayers over clip indexes, the layer store and FUSE. */
export class ClipRemoteLayers implements RemoteLayers {
  readonly #o: ClipRemoteLayersOptions;
  readonly #mounted = new Map<string, Mounted>();
  /** Id-translated second mounts of mounted layers (user-namespaced containers), by mount point. */
  readonly #mapped = new Map<string, { fs: LayerFilesystem; source: string; own?: LayerReader; ids: IdTranslation }>();
  /** Set while the mounts are being handed to a successor: no mount changes meanwhile. */
  #handingOver = false;
  /** Checks of untrusted indexes against their completed layer, by index digest: one at a time each. */
  readonly #checks = new Map<string, Promise<boolean>>();
  /**
   * Mount points whose layer was refused as quarantined (typically by a restart's re-mount): a
   * Prepare over one then fails with that reason, not a bare "not mounted". Bounded.
   */
  readonly #refused = new LruMap<string, Error>(1024);

  constructor(o: ClipRemoteLayersOptions) {
    this.#o = o;
    if (o.extractCompleted || this.#checking) {
      o.store.onLayerComplete?.((hex) => {
        for (const [mp, m] of this.#mounted) if (m.hex === hex) void this.#completed(mp, m);
      });
    }
  }

  get #checking(): boolean {
    return this.#o.checkIndexes !== false && this.#o.store.openComplete !== undefined;
  }

  async mount(mountpoint: string, labels: Readonly<Record<string, string>>, ctx: RemoteMountContext): Promise<Record<string, string> | undefined> {
    this.#refuseWhileHandingOver();
    // A restart re-mounts from the labels this daemon recorded at commit; a Prepare's may carry the image's.
    const hint = layerHintFromLabels(labels, ctx.restore ? 'committed' : 'prepare');
    if (!hint) return undefined;
    // A second FUSE mount on top of a served one would hide it from its readers.
    if (this.#mounted.has(mountpoint) || this.#mapped.has(mountpoint)) {
      throw failedPrecondition('CLIP_FUSE_MOUNTED', `a lazy layer is already mounted at ${mountpoint}`);
    }
    return withSpan(SPAN_LAYER_PREPARE, { [ATTR_CLIP_SNAPSHOT_KEY]: ctx.key }, async (span) => {
      const layer = await this.#layerOf(hint, ctx.key);
      if (!layer) return undefined;
      span.setAttribute(ATTR_CLIP_LAYER_DIGEST, layer.layerDigest);
      // The layers above are looked up once this one's index is found, not beside it: started
      // together, their look-ups took turns with this one's (its blob fetched last of five), on
      // the one path containerd is waiting on.
      const lookAhead = ctx.restore ? undefined : (): void => this.#lookAhead(layer, labels);
      try {
        const mounted = await this.#mountLayer(mountpoint, layer, ctx, lookAhead, (diffId) =>
          // On restore the name the snapshot was committed under is the target (labels can be
          // rewritten by Update since; the name cannot), and the Prepare's labels are gone.
          checkChainId(ctx.restore
            ? { chainId: ctx.key, parentName: ctx.parent ?? '', diffId, labels: {} }
            : { chainId: hint.chainId, parentName: ctx.parent ?? '', diffId, labels }),
        );
        this.#refused.delete(mountpoint);
        return mounted;
      } catch (err) {
        const ce = findClipError(err);
        if (ce?.code === 'CLIP_LAYER_QUARANTINED') this.#refused.set(mountpoint, ce);
        throw err;
      }
    });
  }

  /**
   * containerd prepares an image's layers one after another, each Prepare waiting for the one
   * below; the indexes of the layers above this one (CRI's `cri.image-layers`) are looked up now,
   * side by side, so their Prepares find them ready. Same repository and manifest as this layer.
   */
  #lookAhead(layer: ChainLayer, labels: Readonly<Record<string, string>>): void {
    if (!this.#o.indexes.prefetch) return;
    const others = imageLayersFromLabels(labels).filter((d) => d !== layer.layerDigest);
    if (others.length === 0) return;
    this.#o.indexes.prefetch(others.map((d) => ({ imageRef: layer.ref, layerDigest: d, ...(layer.manifestDigest ? { manifestDigest: layer.manifestDigest } : {}) })));
  }

  /**
   * `check` vets the resolved index's diffID before anything is opened or mounted; `resolvedHook` runs
   * once the index look-up has settled (found or not).
   */
  async #mountLayer(
    mountpoint: string, layer: ChainLayer, ctx: RemoteMountContext, resolvedHook: (() => void) | undefined, check: (diffId: string) => void,
  ): Promise<Record<string, string>> {
    const started = Date.now();
    const resolved = await withSpan(SPAN_INDEX_RESOLVE, { [ATTR_CLIP_LAYER_DIGEST]: layer.layerDigest }, async (span) => {
      try {
        const r = ctx.restore
          ? await this.#o.indexes.local(layer.layerDigest)
          : await this.#o.indexes.resolve({ imageRef: layer.ref, layerDigest: layer.layerDigest, ...(layer.manifestDigest ? { manifestDigest: layer.manifestDigest } : {}) });
        if (r) span.setAttributes({ [ATTR_CLIP_INDEX_SOURCE]: r.source, [ATTR_CLIP_LAYER_DIFF_ID]: r.index.meta.diffId });
        return r;
      } finally {
        resolvedHook?.();
      }
    });
    if (!resolved) throw unavailable('CLIP_INDEX_NOT_CACHED', `clip index of ${layer.layerDigest} is not in this node's cache`);
    const resolveMs = Date.now() - started;
    const { index } = resolved;
    check(index.meta.diffId);
    const checkpoints = index.gzipCheckpoints;
    const frames = index.zstdFrames;
    const ref: LayerRef = {
      ref: layer.ref,
      digest: layer.layerDigest,
      diffId: index.meta.diffId,
      uncompressedSize: index.meta.uncompressedSize,
      ...(checkpoints ? { gzipCheckpoints: checkpoints } : {}),
      ...(frames ? { zstdFrames: frames } : {}),
    };
    const opened = this.#o.store.open(ref);
    const recorded = this.#o.profiles ? this.#o.profiles.attach(opened) : opened;
    // The Prepare RPC that mounts the layer runs inside its image's start trace, if any.
    const start = this.#o.starts?.active();
    start?.addLayer(index.meta.diffId);
    const reader = this.#o.starts && start ? new StartTraceReader(recorded, this.#o.starts, start.image) : recorded;
    const revocable = new RevocableReader(reader);
    const fs = new LayerFilesystem({ view: index, reader: revocable, logger: ctx.log, driver: this.#o.fuseDriver, activity: this.#o.readActivity });
    const mountStarted = Date.now();
    try {
      await withSpan(SPAN_FUSE_MOUNT, { [ATTR_CLIP_LAYER_DIFF_ID]: index.meta.diffId }, () =>
        fs.mount(mountpoint),
      );
    } catch (err) {
      await reader.close().catch(() => undefined);
      await resolved.saved?.catch(() => undefined);
      throw err;
    }
    // The index was written to the local cache beside the mount; the snapshot is recorded (and a
    // restart re-mounts it from that cache) only after this, so a failed write is a failed mount.
    try {
      await resolved.saved;
    } catch (err) {
      await fs.unmount().catch((e: unknown) => ctx.log.warn({ mount_point: mountpoint, err: messageOf(e) }, 'unmount after a failed index save failed'));
      await reader.close().catch(() => undefined);
      throw err;
    }
    const m: Mounted = {
      fs, reader: revocable, view: index, index, indexDigest: resolved.digest, source: resolved.source, trusted: resolved.trusted, ref,
      hex: index.meta.diffId.slice('sha256:'.length), extractKey: extractKeyOf(index.meta.diffId, resolved.bytes), log: ctx.log,
    };
    this.#mounted.set(mountpoint, m);
    this.#o.store.extracted?.claim(m.extractKey);
    setMountedLayers(this.#fuseMounted());
    if (this.#o.extractCompleted || this.#checking) void this.#completedIfComplete(mountpoint, m);
    ctx.log.info({ layer: layer.layerDigest, diff_id: index.meta.diffId, key: ctx.key, source: resolved.source, looked_up_ahead: resolved.ahead === true, resolve_ms: resolveMs, mount_ms: Date.now() - mountStarted, duration_ms: Date.now() - started }, 'layer mounted');
    return { [LABEL_CLIP_IMAGE_REF]: layer.ref, [LABEL_CLIP_LAYER_DIGEST]: layer.layerDigest, [LABEL_CLIP_DIFF_ID]: index.meta.diffId };
  }

  async #completedIfComplete(mountpoint: string, m: Mounted): Promise<void> {
    const p = await this.#o.store.presence?.(m.ref).catch(() => undefined);
    if (p?.complete) await this.#completed(mountpoint, m);
  }

  /** The layer is complete on disk: check an index this node did not build, then extract. */
  async #completed(mountpoint: string, m: Mounted): Promise<void> {
    if (!m.trusted && this.#checking && !(await this.#checkIndex(m))) return;
    if (this.#o.extractCompleted) await this.#extract(mountpoint, m);
  }

  /** Whether the mount's index may be used further; one check per index digest at a time. */
  #checkIndex(m: Mounted): Promise<boolean> {
    let p = this.#checks.get(m.indexDigest);
    if (!p) {
      p = this.#runIndexCheck(m).then((ok) => {
        // A passed or failed check is final (the mounts are marked); only "could not run" is retried.
        this.#checks.delete(m.indexDigest);
        return ok;
      });
      this.#checks.set(m.indexDigest, p);
    }
    return p;
  }

  /**
   * Rebuild the index from the complete, diffID-verified layer and compare (`index-check.ts`). A
   * difference quarantines the layer as that index describes it: every mount through the index is
   * cut off (reads and Prepares over it fail `CLIP_LAYER_QUARANTINED`, EIO), the index digest is
   * recorded so no source serves it again, and the index rebuilt from the layer replaces it in the
   * local cache and the ContentCache. Other mounts of the same layer are untouched.
   */
  async #runIndexCheck(m: Mounted): Promise<boolean> {
    const started = Date.now();
    const { openComplete } = this.#o.store;
    const same = (): Mounted[] => [...this.#mounted.values()].filter((o) => o.indexDigest === m.indexDigest);
    let file: Awaited<ReturnType<NonNullable<typeof openComplete>>>;
    try {
      file = await openComplete!.call(this.#o.store, m.ref);
    } catch (err) {
      m.log.warn({ layer: m.ref.digest, diff_id: m.ref.diffId, err: messageOf(err), code: findClipError(err)?.code }, 'index check against the completed layer could not run');
      return false;
    }
    if (!file) return false;
    let result: Awaited<ReturnType<typeof checkIndexAgainstLayer>>;
    try {
      // openComplete serves only a layer verified against m.ref.diffId: not hashed a second time.
      result = await checkIndexAgainstLayer(m.index, file.read, m.ref.uncompressedSize, this.#o.limits, m.ref.diffId);
    } catch (err) {
      // No verdict (the layer could not be read or parsed): checked again at the next completion.
      m.log.warn({ layer: m.ref.digest, diff_id: m.ref.diffId, err: messageOf(err), code: findClipError(err)?.code }, 'index check against the completed layer could not run');
      return false;
    } finally {
      file.close();
    }
    const { mismatch } = result;
    if (!mismatch) {
      for (const o of same()) o.trusted = true;
      await this.#o.indexes.verified?.(m.ref.digest, m.indexDigest).catch((err: unknown) =>
        m.log.warn({ layer: m.ref.digest, err: messageOf(err) }, 'could not mark the checked index in the local cache'),
      );
      m.log.info({ layer: m.ref.digest, diff_id: m.ref.diffId, source: m.source, index_digest: m.indexDigest, entries: m.index.entryCount, duration_ms: Date.now() - started }, 'index checked against its completed layer');
      return true;
    }
    const err = dataCorrupt('CLIP_LAYER_QUARANTINED', `layer ${m.ref.digest} as index ${m.indexDigest} describes it is quarantined: ${mismatch.message}`, mismatch);
    const cut = same();
    for (const o of cut) o.reader?.revoke(err);
    this.#o.quarantine?.add({ kind: 'index', key: m.indexDigest, layer: m.ref.digest, diffId: m.ref.diffId, code: mismatch.code, reason: mismatch.message });
    recordVerificationFailure('index', 'layer_mismatch');
    m.log.error(
      { layer: m.ref.digest, diff_id: m.ref.diffId, source: m.source, index_digest: m.indexDigest, mounts: cut.length, code: mismatch.code, err: mismatch.message },
      'index does not describe its layer: mounts through it quarantined, the index rebuilt from the layer replaces it',
    );
    await this.#o.indexes.replace?.(m.ref.digest, m.indexDigest, encodeIndex(result.actual)).catch((e: unknown) =>
      m.log.error({ layer: m.ref.digest, err: messageOf(e) }, 'could not replace the quarantined index in the local cache'),
    );
    return false;
  }

  /**
   * Write a complete layer out as a directory (once per layer, shared by its mounts), from the
   * disk-cache file, which is checked against the diffID before this process's first read of it.
   */
  async #extract(mountpoint: string, m: Mounted): Promise<void> {
    const { extracted, openComplete } = this.#o.store;
    if (!extracted || !openComplete || extracted.dirOf(m.extractKey)) return;
    // A quarantined layer (its blob or its index is not what it claims) is never extracted.
    if (this.#o.store.isQuarantined?.(m.ref)) return;
    const file = await openComplete.call(this.#o.store, m.ref).catch((err: unknown) => {
      m.log.warn({ diff_id: m.ref.diffId, err: messageOf(err) }, 'completed layer could not be opened for extraction');
      return undefined;
    });
    if (!file) return;
    try {
      const dir = await extracted.extract({ hex: m.extractKey, diffId: m.ref.diffId, source: m.view, read: file.read, size: m.ref.uncompressedSize });
      if (dir) this.#o.onExtracted?.(mountpoint);
    } finally {
      file.close();
    }
  }

  /** Every layer mounted now, with its mount point (status). */
  mountedLayers(): Array<{ mountpoint: string; layer: LayerRef }> {
    return [...this.#mounted.entries()].map(([mountpoint, m]) => ({ mountpoint, layer: m.ref }));
  }

  /**
   * Every mount served now, layers and id-mapped views, small enough to cross a socket (the
   * FUSE server's answer to a daemon re-attaching).
   */
  servedMounts(): ServedMount[] {
    // Mid-hand-over the answer would be "nothing" (released) or about to change: let the caller retry.
    this.#refuseWhileHandingOver();
    const layerOf = (r: LayerRef): ServedMount['layer'] => ({ ref: r.ref, digest: r.digest, diffId: r.diffId, uncompressedSize: r.uncompressedSize });
    const out: ServedMount[] = [...this.#mounted.entries()].map(([mountpoint, m]) => ({ mountpoint, layer: layerOf(m.ref) }));
    for (const [mountpoint, v] of this.#mapped) {
      const src = this.#mounted.get(v.source);
      if (src) out.push({ mountpoint, mappedFrom: v.source, layer: layerOf(src.ref) });
    }
    return out;
  }

  async check(mountpoint: string): Promise<void> {
    this.#refuseWhileHandingOver();
    const m = this.#mounted.get(mountpoint);
    if (!m) throw this.#refused.get(mountpoint) ?? unavailable('CLIP_LAYER_NOT_MOUNTED', `lazy layer at ${mountpoint} is not mounted`);
    if (!m.reader) {
      if (this.#o.store.extracted?.dirOf(m.extractKey)) return;
      throw unavailable('CLIP_LAYER_NOT_MOUNTED', `lazy layer at ${mountpoint} was retired and its extracted dir is gone`);
    }
    await m.reader.check();
  }

  /** The extracted directory of the layer registered at `mountpoint`, or undefined. */
  async localDir(mountpoint: string): Promise<string | undefined> {
    const m = this.#mounted.get(mountpoint);
    return m ? this.#o.store.extracted?.dirOf(m.extractKey) : undefined;
  }

  /**
   * Unmount the FUSE filesystem of a layer that has an extracted dir, keeping the layer registered
   * with its dir pinned. Refused (false) while an id-translated mount of it exists.
   */
  async retire(mountpoint: string): Promise<boolean> {
    if (this.#handingOver) return false;
    const m = this.#mounted.get(mountpoint);
    const extracted = this.#o.store.extracted;
    if (!m?.fs || !m.reader || !extracted?.dirOf(m.extractKey)) return false;
    for (const v of this.#mapped.values()) if (v.source === mountpoint) return false;
    extracted.pin(m.extractKey);
    const { fs, reader } = m;
    m.fs = undefined;
    m.reader = undefined;
    try {
      await fs.unmount();
    } finally {
      await reader.close().catch(() => undefined);
    }
    setMountedLayers(this.#fuseMounted());
    m.log.info({ mount_point: mountpoint, diff_id: m.ref.diffId }, 'FUSE mount retired; the layer is served from its extracted dir');
    return true;
  }

  /**
   * Mount a layer registered at `layerMountpoint` again at `target`, owners translated. A retired
   * layer gets a reader of its own for it (its tar is read again, from the disk cache or fetched).
   */
  async mountMapped(layerMountpoint: string, target: string, ids: IdTranslation, log: Logger): Promise<void> {
    this.#refuseWhileHandingOver();
    const m = this.#mounted.get(layerMountpoint);
    if (!m) throw unavailable('CLIP_LAYER_NOT_MOUNTED', `lazy layer at ${layerMountpoint} is not mounted`);
    if (this.#mapped.has(target)) return;
    // The same reader while FUSE-mounted: a user-namespaced container shares the layer's reads and caches.
    const own = m.reader ? undefined : this.#o.store.open(m.ref);
    const fs = new LayerFilesystem({ view: m.view, reader: m.reader ?? own!, logger: log, ids, driver: this.#o.fuseDriver, activity: this.#o.readActivity });
    try {
      await fs.mount(target);
    } catch (err) {
      await own?.close().catch(() => undefined);
      throw err;
    }
    this.#mapped.set(target, { fs, source: layerMountpoint, ids, ...(own ? { own } : {}) });
  }

  async unmount(mountpoint: string): Promise<void> {
    this.#refuseWhileHandingOver();
    const mapped = this.#mapped.get(mountpoint);
    if (mapped) {
      this.#mapped.delete(mountpoint);
      try {
        return await mapped.fs.unmount();
      } finally {
        await mapped.own?.close().catch(() => undefined);
      }
    }
    this.#refused.delete(mountpoint);
    const m = this.#mounted.get(mountpoint);
    if (!m) return;
    this.#mounted.delete(mountpoint);
    // Another registration of the same layer (another namespace's snapshot) keeps it claimed.
    if (![...this.#mounted.values()].some((o) => o.extractKey === m.extractKey)) this.#o.store.extracted?.release(m.extractKey);
    if (!m.fs) {
      this.#o.store.extracted?.unpin(m.extractKey);
      setMountedLayers(this.#fuseMounted());
      return;
    }
    try {
      await m.fs.unmount();
    } finally {
      await m.reader?.close().catch(() => undefined);
      setMountedLayers(this.#fuseMounted());
    }
  }

  #refuseWhileHandingOver(): void {
    if (this.#handingOver) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', 'the FUSE server is handing its mounts to a new FUSE server; try again');
  }

  /**
   * Stop serving every mount and describe each, with its /dev/fuse descriptor (-1 for a retired
   * layer), for a successor process. Mount changes are refused from here on; `resumeServing`
   * undoes this when the hand-over fails, `releaseHandedOver` completes it.
   */
  async handOver(): Promise<{ mounts: HandoverMount[]; fds: number[] }> {
    for (const [mp, m] of this.#mounted) {
      if (m.fs && m.fs.driver !== 'kernel') throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `layer at ${mp} is served by the ${m.fs.driver} driver, whose connections cannot be handed over`);
    }
    for (const [mp, v] of this.#mapped) {
      if (v.fs.driver !== 'kernel') throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `id-mapped mount ${mp} is served by the ${v.fs.driver} driver`);
      if (!isIdMapping(v.ids)) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `id-mapped mount ${mp} has no id ranges to hand over`);
    }
    this.#handingOver = true;
    const mounts: HandoverMount[] = [];
    const fds: number[] = [];
    try {
      for (const [mountpoint, m] of this.#mounted) {
        const h: HandedMount | undefined = m.fs ? await m.fs.handOver() : undefined;
        mounts.push({ mountpoint, layer: { ref: m.ref.ref, digest: m.ref.digest, diffId: m.ref.diffId }, indexDigest: m.indexDigest, trusted: m.trusted, ...(h ? { negotiated: h.negotiated } : {}) });
        fds.push(h?.fd ?? -1);
      }
      for (const [mountpoint, v] of this.#mapped) {
        const src = this.#mounted.get(v.source);
        if (!src) continue;
        const h = await v.fs.handOver();
        const ids = v.ids as unknown as { uids: IdRange[]; gids: IdRange[] };
        mounts.push({
          mountpoint, mappedFrom: v.source, uids: [...ids.uids], gids: [...ids.gids],
          layer: { ref: src.ref.ref, digest: src.ref.digest, diffId: src.ref.diffId }, indexDigest: src.indexDigest, trusted: src.trusted, negotiated: h.negotiated,
        });
        fds.push(h.fd);
      }
    } catch (err) {
      this.resumeServing();
      throw err;
    }
    return { mounts, fds };
  }

  /** The hand-over failed before the successor took anything: serve again. */
  resumeServing(): void {
    this.#handingOver = false;
    for (const m of this.#mounted.values()) m.fs?.resume();
    for (const v of this.#mapped.values()) v.fs.resume();
  }

  /** The successor has every mount: forget them here without unmounting (closing this process's descriptors). */
  async releaseHandedOver(): Promise<void> {
    for (const v of this.#mapped.values()) {
      v.fs.release();
      await v.own?.close().catch(() => undefined);
    }
    this.#mapped.clear();
    for (const m of this.#mounted.values()) {
      m.fs?.release();
      await m.reader?.close().catch(() => undefined);
    }
    this.#mounted.clear();
    setMountedLayers(0);
  }

  /**
   * Serve mounts a predecessor handed over (`handOver`), each with its descriptor. A mount whose
   * index is not in the local cache with the same digest cannot be served (its node ids would
   * mean other rows): its descriptor is closed, which ends that connection, and the daemon's
   * restore mounts it again. Returns the mount points adopted.
   */
  async adopt(mounts: readonly HandoverMount[], fds: readonly number[], log: Logger): Promise<string[]> {
    const adopted: string[] = [];
    const layers = mounts.map((m, i) => ({ m, fd: fds[i] ?? -1 }));
    for (const { m, fd } of [...layers.filter((x) => !x.m.mappedFrom), ...layers.filter((x) => x.m.mappedFrom)]) {
      try {
        if (m.mappedFrom) await this.#adoptMapped(m, fd, log);
        else await this.#adoptLayer(m, fd, log);
        adopted.push(m.mountpoint);
      } catch (err) {
        if (fd >= 0) closeFd(fd);
        log.error({ mount_point: m.mountpoint, layer: m.layer.digest, err: messageOf(err), code: findClipError(err)?.code }, 'hand-over: mount not adopted (its connection ends; the daemon mounts it again)');
      }
    }
    setMountedLayers(this.#fuseMounted());
    return adopted;
  }

  async #adoptLayer(h: HandoverMount, fd: number, log: Logger): Promise<void> {
    const resolved = await this.#o.indexes.local(h.layer.digest);
    if (!resolved || resolved.digest !== h.indexDigest) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `index ${h.indexDigest} of ${h.layer.digest} is not in this node's index cache`);
    const { index } = resolved;
    const checkpoints = index.gzipCheckpoints;
    const frames = index.zstdFrames;
    const ref: LayerRef = {
      ref: h.layer.ref, digest: h.layer.digest, diffId: index.meta.diffId, uncompressedSize: index.meta.uncompressedSize,
      ...(checkpoints ? { gzipCheckpoints: checkpoints } : {}), ...(frames ? { zstdFrames: frames } : {}),
    };
    const m: Mounted = {
      fs: undefined, reader: undefined, view: index, index, indexDigest: resolved.digest, source: resolved.source, trusted: h.trusted || resolved.trusted, ref,
      hex: index.meta.diffId.slice('sha256:'.length), extractKey: extractKeyOf(index.meta.diffId, resolved.bytes), log,
    };
    if (h.negotiated && fd >= 0) {
      const opened = this.#o.store.open(ref);
      const revocable = new RevocableReader(this.#o.profiles ? this.#o.profiles.attach(opened) : opened);
      const fs = new LayerFilesystem({ view: index, reader: revocable, logger: log, driver: 'kernel', activity: this.#o.readActivity });
      fs.adopt({ fd, mountpoint: h.mountpoint, negotiated: h.negotiated });
      m.fs = fs;
      m.reader = revocable;
    } else {
      // Retired: served from its extracted dir, which stays pinned.
      this.#o.store.extracted?.pin(m.extractKey);
    }
    this.#mounted.set(h.mountpoint, m);
    this.#o.store.extracted?.claim(m.extractKey);
    if (m.fs && (this.#o.extractCompleted || this.#checking)) void this.#completedIfComplete(h.mountpoint, m);
  }

  async #adoptMapped(h: HandoverMount, fd: number, log: Logger): Promise<void> {
    const m = this.#mounted.get(h.mappedFrom ?? '');
    if (!m || !h.negotiated || fd < 0 || !h.uids || !h.gids) throw unavailable('CLIP_FUSE_HANDOVER_FAILED', `id-mapped mount ${h.mountpoint}: its layer mount ${h.mappedFrom} was not adopted`);
    const ids = new IdMapping(h.uids, h.gids);
    const own = m.reader ? undefined : this.#o.store.open(m.ref);
    const fs = new LayerFilesystem({ view: m.view, reader: m.reader ?? own!, logger: log, ids, driver: 'kernel', activity: this.#o.readActivity });
    fs.adopt({ fd, mountpoint: h.mountpoint, negotiated: h.negotiated });
    this.#mapped.set(h.mountpoint, { fs, source: h.mappedFrom!, ids, ...(own ? { own } : {}) });
  }

  /** Layers served over FUSE now (retired ones are served from their extracted dirs). */
  #fuseMounted(): number {
    let n = 0;
    for (const m of this.#mounted.values()) if (m.fs) n++;
    return n;
  }

  /** Unmount everything (daemon shutdown). */
  async unmountAll(log: Logger): Promise<void> {
    for (const mp of [...this.#mapped.keys(), ...this.#mounted.keys()]) {
      await this.unmount(mp).catch((err: unknown) => log.warn({ mount_point: mp, err: messageOf(err) }, 'unmount failed'));
    }
  }

  async #layerOf(hint: LayerHint, key: string): Promise<ChainLayer | undefined> {
    if (hint.type === 'known') {
      return { ref: hint.imageRef, layerDigest: hint.layerDigest, ...(hint.manifestDigest ? { manifestDigest: hint.manifestDigest } : {}) };
    }
    if (!this.#o.resolveChain) return undefined;
    const namespace = namespaceOfKey(key) ?? this.#o.defaultNamespace;
    const found = await this.#o.resolveChain(hint.chainId, namespace);
    if (!found) throw notFound('CLIP_CHAIN_NOT_RESOLVED', `layer of chain ${hint.chainId} in containerd's content store (namespace ${namespace})`);
    return found;
  }
}

function isIdMapping(ids: IdTranslation): boolean {
  const x = ids as Partial<{ uids: unknown; gids: unknown }>;
  return Array.isArray(x.uids) && Array.isArray(x.gids);
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing holds the connection.
  }
}

/** containerd rewrites snapshot keys to `<namespace>/<seq>/<client key>`. */
export function namespaceOfKey(key: string): string | undefined {
  const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/\d+\//.exec(key);
  return m?.[1];
}

/** sha256 over the diffID and the index's bytes: the extracted dir of this layer as this index describes it. */
function extractKeyOf(diffId: string, indexBytes: Buffer): string {
  const indexDigest = createHash('sha256').update(indexBytes).digest('hex');
  return createHash('sha256').update(`clip-extracted/v1\n${diffId}\n${indexDigest}`).digest('hex');
}
