/**
 * `pull` through containerd's API the way CRI's unpacker does it: lease, content, per-layer
 * Stat/Prepare with CRI labels (a remote snapshotter answers ALREADY_EXISTS for lazy layers),
 * download + diff Apply + Commit only as a fallback, then gc labels and the image record.
 */
import { randomBytes } from 'node:crypto';
import { dataCorrupt, invalidArgument, isKind, messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { isIndexMediaType, type ImageIndex, type ImageManifest, type Platform } from '../registry/media-types.js';
import { DEFAULT_PLATFORM, formatPlatform, selectPlatformManifest } from '../registry/platform.js';
import { chainIds } from './chain-id.js';
import type { ContainerdClient } from './containerd-client.js';
import type { FetchedManifestBytes, ImageSource } from './image-source.js';
import {
  LABEL_UNCOMPRESSED, criLayerLabels, distributionSourceLabel, extractKey, gcRefSnapshotLabel, indexGcLabels, manifestGcLabels,
} from './labels.js';
import type { ContainerdDescriptor, ContainerdMount, ImageRecord } from './types.js';

export type LayerPullMode = 'lazy' | 'full' | 'present';

export interface LayerPullResult {
  index: number;
  digest: string;
  chainId: string;
  mode: LayerPullMode;
}

/** The part of ContainerdClient a pull uses (a seam for tests). */
export interface PullClient extends Pick<ContainerdClient,
  'createLease' | 'deleteLease' | 'writeContent' | 'updateContentLabels' | 'createImage' | 'updateImage' |
  'statSnapshot' | 'prepareSnapshot' | 'commitSnapshot' | 'removeSnapshot' | 'applyDiff'> {
  withLease(leaseId: string): PullClient;
}

export interface PullOptions {
  /** A client bound to the target namespace. */
  client: PullClient;
  source: ImageSource;
  /** The normalised image name, which becomes the image record's name. */
  imageRef: string;
  /** Tag or digest to resolve in `source`. */
  reference: string;
  snapshotter: string;
  platform?: Platform;
  leaseExpireMs?: number;
  logger?: Logger;
  /** Called once per layer when its outcome is known. */
  onLayer?: (layer: LayerPullResult) => void;
}

export interface PullSummary {
  image: string;
  manifest: string;
  config: string;
  snapshotter: string;
  chainId: string;
  layers: LayerPullResult[];
  lazy: number;
  full: number;
  present: number;
  duration_ms: number;
  /** CPU time of this process during the pull (user + system), ms: the command's own work. */
  cpu_ms: number;
  /** Where the pull's own time went, in ms (measured in `make bench`). */
  phases_ms: PullPhases;
}

/** Wall time of each step of a pull, in ms. */
export interface PullPhases {
  /** Lease creation in containerd (from the start; runs beside the manifest resolution). */
  lease: number;
  /** Manifest (and index) resolution in the registry (from the start; runs beside the lease). */
  resolve: number;
  /** Config blob fetch. */
  config: number;
  /** Waiting for the config, manifest and index writes to containerd's content store after the layers (they run beside them). */
  content: number;
  /** Per layer, in order: containerd's Prepare (where the snapshotter resolves and mounts a lazy layer), Commit or unpack (the first entry includes the one batch of Stats). */
  layers: number[];
  /** Snapshot GC label and image record. */
  image: number;
  /** Wall time of every Prepare RPC as this client saw it, in the order sent: containerd's part plus the snapshotter's handler. */
  prepare_rpcs: number[];
  /** This process's CPU time within each Prepare RPC (its own work then: encoding, decoding, other calls' callbacks). */
  prepare_rpcs_cpu: number[];
  /**
   * This process's CPU time within each window: `start` (lease beside the manifest), `config`,
   * `layers` (the layers' windows together), `content`, `image`. Waits minus these are what the
   * pull waited on others for.
   */
  cpu: { start: number; config: number; layers: number; content: number; image: number };
}

interface Resolved {
  index?: FetchedManifestBytes;
  manifest: FetchedManifestBytes;
  doc: ImageManifest;
}

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
const parseJson = <T>(b: Buffer, what: string): T => {
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch (err) {
    throw dataCorrupt('CLIP_PULL_BAD_JSON', `${what}: ${messageOf(err)}`);
  }
};

async function resolveManifest(source: ImageSource, reference: string, platform: Platform): Promise<Resolved> {
  const top = await source.getManifest(reference);
  if (!isIndexMediaType(top.mediaType)) return { manifest: top, doc: parseJson<ImageManifest>(top.bytes, `manifest ${top.digest}`) };
  const idx = parseJson<ImageIndex>(top.bytes, `index ${top.digest}`);
  const desc = selectPlatformManifest(idx.manifests ?? [], platform);
  if (!desc) throw invalidArgument('CLIP_PULL_NO_PLATFORM', `index ${top.digest} has no manifest for ${formatPlatform(platform)}`);
  const manifest = await source.getManifest(desc.digest);
  return { index: top, manifest, doc: parseJson<ImageManifest>(manifest.bytes, `manifest ${manifest.digest}`) };
}

/** Pull `reference` into containerd; returns what happened to each layer. */
export async function pullImage(opts: PullOptions): Promise<PullSummary> {
  const started = Date.now();
  const cpu0 = process.cpuUsage();
  let mark = started;
  let cpuMark = cpu0;
  /** This process's CPU ms since the previous call (or the start). */
  const cpuLap = (): number => {
    const now = process.cpuUsage();
    const d = (now.user - cpuMark.user + now.system - cpuMark.system) / 1000;
    cpuMark = now;
    return Math.round(d * 100) / 100;
  };
  /** ms since the previous call (or the start). */
  const lap = (): number => {
    const now = Date.now();
    const d = now - mark;
    mark = now;
    return d;
  };
  const phases: PullPhases = {
    lease: 0, resolve: 0, config: 0, content: 0, layers: [], image: 0, prepare_rpcs: [], prepare_rpcs_cpu: [],
    cpu: { start: 0, config: 0, layers: 0, content: 0, image: 0 },
  };
  const log = opts.logger ?? silentLogger();
  // The lease (containerd) and the manifest (registry) do not depend on each other: one round trip
  // of each, side by side. Each phase is then its own duration, both counted from the start.
  const timed = async <T>(p: Promise<T>): Promise<{ value: T; ms: number }> => ({ value: await p, ms: Date.now() - started });
  const [leased, resolved] = await Promise.allSettled([
    timed(opts.client.createLease({ expireAfterMs: opts.leaseExpireMs ?? 24 * 3600_000 })),
    timed(resolveManifest(opts.source, opts.reference, opts.platform ?? DEFAULT_PLATFORM)),
  ]);
  if (leased.status === 'rejected') throw leased.reason;
  const lease = leased.value.value;
  let content: Promise<void> | undefined;
  try {
    if (resolved.status === 'rejected') throw resolved.reason;
    const r = resolved.value.value;
    phases.lease = leased.value.ms;
    phases.resolve = resolved.value.ms;
    lap();
    phases.cpu.start = cpuLap();
    const client = opts.client.withLease(lease);
    const source = { [distributionSourceLabel(opts.source.host)]: opts.source.repository };
    const configBytes = await opts.source.getBlob(r.doc.config.digest);
    phases.config = lap();
    phases.cpu.config = cpuLap();
    const diffIds = parseJson<{ rootfs?: { diff_ids?: string[] } }>(configBytes, 'image config').rootfs?.diff_ids ?? [];
    const layers = r.doc.layers ?? [];
    if (diffIds.length !== layers.length) {
      throw dataCorrupt('CLIP_PULL_LAYER_COUNT', `manifest ${r.manifest.digest}: ${layers.length} layers but ${diffIds.length} diff ids`);
    }
    const layerDigests = layers.map((l) => l.digest);
    // Snapshots need none of the content: the writes run beside the layers (the lease keeps them
    // from gc) and are awaited before the image record, which refers to them. They start once the
    // first layer's Prepare has been sent: each commit is a write transaction of containerd's
    // metadata database, which takes one writer at a time, and started before it they held up
    // that Prepare's own transaction; after it they overlap the snapshotter's slowest Prepare.
    const startContent = (): Promise<void> => {
      if (content) return content;
      content = Promise.all([
        putBlob(client, `config-${r.doc.config.digest}`, r.doc.config.digest, configBytes, source),
        putBlob(client, `manifest-${r.manifest.digest}`, r.manifest.digest, r.manifest.bytes, { ...source, ...manifestGcLabels(r.doc.config.digest, layerDigests) }),
        r.index ? putBlob(client, `index-${r.index.digest}`, r.index.digest, r.index.bytes, { ...source, ...indexGcLabels([r.manifest.digest]) }) : undefined,
      ]).then(() => undefined);
      content.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
      return content;
    };

    const chains = chainIds(diffIds);
    // Which layers the snapshotter already has: every chain asked at once, not one round trip per layer.
    const present = await Promise.all(chains.map((c) => snapshotExists(client, opts.snapshotter, c)));
    const results: LayerPullResult[] = [];
    const jobOf = (i: number): LayerJob => ({
      layer: layers[i] as ContainerdDescriptor, diffId: diffIds[i] as string, chainId: chains[i] as string, parent: chains[i - 1] ?? '', source,
      prepareMs: phases.prepare_rpcs, prepareCpuMs: phases.prepare_rpcs_cpu,
      labels: criLayerLabels({ imageRef: opts.imageRef, manifestDigest: r.manifest.digest, layerDigests, index: i, chainId: chains[i] as string }),
    });
    const report = (i: number, mode: LayerPullMode): void => {
      const layer = layers[i] as ContainerdDescriptor;
      const res = { index: i, digest: layer.digest, chainId: chains[i] as string, mode };
      log.info({ layer: layer.digest, diff_id: diffIds[i], mode }, 'layer unpacked');
      opts.onLayer?.(res);
      results.push(res);
    };
    // A lazy layer's Stat (is the target in containerd now?) runs beside the next layer's Prepare;
    // the layer is reported once it has answered.
    let unconfirmed: { index: number; present: Promise<boolean> } | undefined;
    for (let i = 0; i < layers.length; i++) {
      const run: Promise<Outcome> = present[i] ? Promise.resolve({ mode: 'present' }) : unpackLayer(client, opts, jobOf(i), i < layers.length - 1);
      startContent();
      let out: Outcome;
      if (unconfirmed) {
        const below = unconfirmed;
        unconfirmed = undefined;
        const [stat, here] = await Promise.allSettled([below.present, run]);
        if (stat.status === 'rejected') throw stat.reason;
        // Not in containerd after all (removed meanwhile): that layer the ordinary way (Stat, then Prepare again).
        report(below.index, stat.value ? 'lazy' : await settle(unpackLayer(client, opts, jobOf(below.index), false, 1)));
        if (here.status === 'fulfilled') out = here.value;
        else if (stat.value) throw here.reason;
        // This layer's Prepare had no parent to stand on: again, now that it is there.
        else out = await unpackLayer(client, opts, jobOf(i), i < layers.length - 1);
      } else {
        out = await run;
      }
      phases.layers.push(lap());
      phases.cpu.layers += cpuLap();
      if (out.present) unconfirmed = { index: i, present: out.present };
      else report(i, out.mode);
      lap(); // the log line and callback are not the layer's
      cpuLap();
    }
    if (unconfirmed) report(unconfirmed.index, await settle(Promise.resolve({ mode: 'lazy' as const, present: unconfirmed.present })));
    await startContent();
    phases.content = lap();
    phases.cpu.content = cpuLap();
    const top = chains.at(-1) ?? '';
    if (top !== '') await client.updateContentLabels(r.doc.config.digest, { [gcRefSnapshotLabel(opts.snapshotter)]: top });
    const target = r.index ?? r.manifest;
    await putImage(client, { name: opts.imageRef, labels: {}, target: { mediaType: target.mediaType, digest: target.digest, size: target.bytes.length } });
    phases.image = lap();
    phases.cpu.image = cpuLap();
    phases.cpu.layers = Math.round(phases.cpu.layers * 100) / 100;
    const count = (m: LayerPullMode): number => results.filter((l) => l.mode === m).length;
    const cpu = process.cpuUsage(cpu0);
    return {
      image: opts.imageRef, manifest: r.manifest.digest, config: r.doc.config.digest, snapshotter: opts.snapshotter, chainId: top,
      layers: results, lazy: count('lazy'), full: count('full'), present: count('present'), duration_ms: Date.now() - started,
      cpu_ms: Math.round((cpu.user + cpu.system) / 1000), phases_ms: phases,
    };
  } finally {
    // Writes still running when a layer failed finish (or fail) before their lease goes.
    await content?.catch(() => undefined);
    await opts.client.deleteLease(lease).catch((err: unknown) => log.warn({ err: messageOf(err) }, 'lease delete failed'));
  }
}

async function putBlob(client: PullClient, ref: string, digest: string, bytes: Buffer, labels: Record<string, string>): Promise<void> {
  const { written } = await client.writeContent({ ref, digest, size: bytes.length, labels, data: bytes });
  if (!written) await client.updateContentLabels(digest, labels);
}

async function putImage(client: PullClient, img: ImageRecord): Promise<void> {
  try {
    await client.createImage(img);
  } catch (err) {
    if (!isKind(err, 'already_exists')) throw err;
    await client.updateImage(img);
  }
}

interface LayerJob {
  layer: ContainerdDescriptor;
  diffId: string;
  chainId: string;
  parent: string;
  labels: Record<string, string>;
  source: Record<string, string>;
  /** Where each Prepare RPC's wall time and this process's CPU time within it go (the summary's `prepare_rpcs`, `prepare_rpcs_cpu`). */
  prepareMs: number[];
  prepareCpuMs: number[];
}

async function snapshotExists(client: PullClient, snapshotter: string, name: string): Promise<boolean> {
  try {
    await client.statSnapshot(snapshotter, name);
    return true;
  } catch (err) {
    if (isKind(err, 'not_found')) return false;
    throw err;
  }
}

/** A layer's outcome; a lazy one answered ALREADY_EXISTS may still await its Stat (`present`). */
interface Outcome {
  mode: LayerPullMode;
  /** Whether the target is in containerd (the Stat after ALREADY_EXISTS), still running. */
  present?: Promise<boolean>;
}

/** The mode of an outcome once its Stat answered; a target still missing is the race below. */
async function settle(o: Promise<Outcome>): Promise<LayerPullMode> {
  const out = await o;
  if (out.present === undefined || (await out.present)) return out.mode;
  throw dataCorrupt('CLIP_PULL_SNAPSHOT_RACE', 'a lazily prepared snapshot vanished again');
}

// Prepare answers ALREADY_EXISTS when the snapshotter mounted the layer remotely; the target then
// exists, but the same answer can come from a concurrent pull's extraction, hence the retries. The
// caller has just found the target absent, so the first attempt goes straight to Prepare.
// `deferStat`: the first ALREADY_EXISTS returns at once with the Stat still running (`present`),
// so the caller can prepare the next layer meanwhile.
async function unpackLayer(client: PullClient, opts: PullOptions, job: LayerJob, deferStat = false, firstAttempt = 0): Promise<Outcome> {
  const sn = opts.snapshotter;
  for (let attempt = firstAttempt; attempt < 3; attempt++) {
    if (attempt > 0 && (await snapshotExists(client, sn, job.chainId))) return { mode: 'lazy' };
    const key = extractKey(job.chainId, nowNs(), randomBytes(3).toString('base64url'));
    let mounts;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const timed = (): void => {
      const c = process.cpuUsage(c0);
      job.prepareMs.push(Math.round((performance.now() - t0) * 100) / 100);
      job.prepareCpuMs.push(Math.round((c.user + c.system) / 10) / 100);
    };
    try {
      mounts = await client.prepareSnapshot(sn, key, job.parent, job.labels);
      timed();
    } catch (err) {
      timed();
      if (!isKind(err, 'already_exists')) throw err;
      if (deferStat && attempt === 0) {
        const present = snapshotExists(client, sn, job.chainId);
        present.catch(() => undefined); // awaited by the caller
        return { mode: 'lazy', present };
      }
      if (await snapshotExists(client, sn, job.chainId)) return { mode: 'lazy' };
      continue;
    }
    try {
      await fetchAndApply(client, opts, job, mounts);
      await client.commitSnapshot(sn, job.chainId, key, job.labels);
      return { mode: 'full' };
    } catch (err) {
      await client.removeSnapshot(sn, key).catch(() => undefined);
      if (isKind(err, 'already_exists')) continue;
      throw err;
    }
  }
  throw dataCorrupt('CLIP_PULL_SNAPSHOT_RACE', `layer ${job.layer.digest}: snapshot ${job.chainId} neither preparable nor present`);
}

async function fetchAndApply(client: PullClient, opts: PullOptions, job: LayerJob, mounts: ContainerdMount[]): Promise<void> {
  const { layer } = job;
  const labels = { ...job.source, [LABEL_UNCOMPRESSED]: job.diffId };
  const { written } = await client.writeContent({
    ref: `layer-${layer.digest}`, digest: layer.digest, size: layer.size, labels, data: (offset) => opts.source.openBlob(layer.digest, offset, layer.size),
  });
  if (!written) await client.updateContentLabels(layer.digest, labels);
  const applied = await client.applyDiff({ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }, mounts);
  if (applied.digest !== job.diffId) {
    throw dataCorrupt('CLIP_PULL_DIFF_ID_MISMATCH', `layer ${layer.digest} unpacked to ${applied.digest}, config says ${job.diffId}`);
  }
}
