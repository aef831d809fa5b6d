/** Typed wrappers over containerd's content, images, leases, snapshots and diff services. */
import { randomBytes } from 'node:crypto';
import { silentLogger, type Logger } from '../log/index.js';
import { writeContent, type WriteContentOptions, type WriteContentResult } from './content-writer.js';
import { Rpc, RpcChannel } from './rpc.js';
import type { ContainerdDescriptor, ContainerdMount, ContentInfo, ImageRecord, SnapshotKind, SnapshotRecord } from './types.js';

export interface ContainerdClientOptions {
  /** containerd's gRPC socket path. */
  address: string;
  namespace: string;
  /** Deadline of unary calls; diff Apply gets `applyTimeoutMs`. */
  timeoutMs?: number;
  applyTimeoutMs?: number;
  logger?: Logger;
}

interface WireDescriptor { media_type: string; digest: string; size: number; annotations: Record<string, string> }
interface WireContentInfo { digest: string; size: number; labels: Record<string, string> }
interface WireImage { name: string; labels: Record<string, string>; target: WireDescriptor | null }
interface WireSnapshotInfo { name: string; parent: string; kind: number; labels: Record<string, string> }

const KINDS: SnapshotKind[] = ['unknown', 'view', 'active', 'committed'];
const toWireDesc = (d: ContainerdDescriptor): WireDescriptor => ({ media_type: d.mediaType, digest: d.digest, size: d.size, annotations: d.annotations ?? {} });
const fromWireDesc = (d: WireDescriptor | null): ContainerdDescriptor => ({
  mediaType: d?.media_type ?? '', digest: d?.digest ?? '', size: Number(d?.size ?? 0), annotations: d?.annotations ?? {},
});
const fromWireInfo = (i: WireContentInfo | null): ContentInfo => ({ digest: i?.digest ?? '', size: Number(i?.size ?? 0), labels: i?.labels ?? {} });
const fromWireImage = (i: WireImage | null): ImageRecord => ({ name: i?.name ?? '', labels: i?.labels ?? {}, target: fromWireDesc(i?.target ?? null) });
const fromWireSnapshot = (i: WireSnapshotInfo | null): SnapshotRecord => ({
  name: i?.name ?? '', parent: i?.parent ?? '', kind: KINDS[i?.kind ?? 0] ?? 'unknown', labels: i?.labels ?? {},
});
const fromWireMounts = (ms: ContainerdMount[] | undefined): ContainerdMount[] =>
  (ms ?? []).map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: [...(m.options ?? [])] }));

/** A containerd API client bound to one namespace (and optionally one lease). */
export class ContainerdClient {
  readonly #rpc: Rpc;
  readonly #applyTimeoutMs: number;
  readonly #owned: boolean;
  readonly logger: Logger;
  readonly options: ContainerdClientOptions;

  constructor(opts: ContainerdClientOptions, rpc?: Rpc) {
    this.#rpc = rpc ?? new Rpc(new RpcChannel(opts.address), opts.namespace, undefined, opts.timeoutMs ?? 30_000);
    this.#owned = rpc === undefined;
    this.#applyTimeoutMs = opts.applyTimeoutMs ?? 30 * 60_000;
    this.logger = opts.logger ?? silentLogger();
    this.options = opts;
  }

  get namespace(): string {
    return this.#rpc.namespace;
  }

  /** A client sharing this connection whose calls all carry `containerd-lease: <id>`. */
  withLease(leaseId: string): ContainerdClient {
    return new ContainerdClient(this.options, this.#rpc.withLease(leaseId));
  }

  /** Close the connection (only on the client that opened it). */
  close(): void {
    if (this.#owned) this.#rpc.channel.close();
  }

  // ---- content

  /** Info of a blob; not_found when containerd does not have it. */
  async contentInfo(digest: string): Promise<ContentInfo> {
    const res = await this.#rpc.unary<{ info: WireContentInfo | null }>('Content', 'Info', { digest }, `content info ${digest}`);
    return fromWireInfo(res.info);
  }

  /** Set labels on a blob; only the given keys change (an empty value deletes the label). */
  async updateContentLabels(digest: string, labels: Record<string, string>): Promise<ContentInfo> {
    const paths = Object.keys(labels).map((k) => `labels.${k}`);
    const info = { digest, labels: Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== '')) };
    const res = await this.#rpc.unary<{ info: WireContentInfo | null }>('Content', 'Update', { info, update_mask: { paths } }, `content update ${digest}`);
    return fromWireInfo(res.info);
  }

  /** Blobs matching any of the filters (containerd filter syntax). */
  async listContent(filters: string[] = []): Promise<ContentInfo[]> {
    const msgs = await this.#rpc.collect<{ info: WireContentInfo[] }>('Content', 'List', { filters }, 'content list');
    return msgs.flatMap((m) => m.info.map(fromWireInfo));
  }

  /** Read a blob (or a range of it) into memory. */
  async readContent(digest: string, range: { offset?: number; size?: number } = {}): Promise<Buffer> {
    const parts: Buffer[] = [];
    const req = { digest, offset: range.offset ?? 0, size: range.size ?? 0 };
    for await (const m of this.#rpc.stream<{ data: Buffer }>('Content', 'Read', req, `content read ${digest}`)) parts.push(m.data);
    return Buffer.concat(parts);
  }

  /** Write and commit a blob; `written` is false when it was already there. */
  writeContent(opts: WriteContentOptions): Promise<WriteContentResult> {
    return writeContent(this.#rpc, opts);
  }

  // ---- images

  async getImage(name: string): Promise<ImageRecord> {
    const res = await this.#rpc.unary<{ image: WireImage | null }>('Images', 'Get', { name }, `image get ${name}`);
    return fromWireImage(res.image);
  }

  /** Image records of this namespace, optionally filtered (containerd filter syntax). */
  async listImages(filters: string[] = []): Promise<ImageRecord[]> {
    const res = await this.#rpc.unary<{ images: WireImage[] | null }>('Images', 'List', { filters }, 'image list');
    return (res.images ?? []).map((i) => fromWireImage(i));
  }

  async createImage(img: ImageRecord): Promise<ImageRecord> {
    const image = { name: img.name, labels: img.labels, target: toWireDesc(img.target) };
    const res = await this.#rpc.unary<{ image: WireImage | null }>('Images', 'Create', { image }, `image create ${img.name}`);
    return fromWireImage(res.image);
  }

  /** Replace an image record's target and labels (an empty field mask updates everything). */
  async updateImage(img: ImageRecord, fields: string[] = []): Promise<ImageRecord> {
    const image = { name: img.name, labels: img.labels, target: toWireDesc(img.target) };
    const res = await this.#rpc.unary<{ image: WireImage | null }>('Images', 'Update', { image, update_mask: { paths: fields } }, `image update ${img.name}`);
    return fromWireImage(res.image);
  }

  // ---- leases

  /** Create a lease that containerd's GC drops after `expireAfterMs` even if never deleted. */
  async createLease(opts: { id?: string; expireAfterMs?: number; labels?: Record<string, string> } = {}): Promise<string> {
    const id = opts.id ?? `clip-${Date.now()}-${randomBytes(4).toString('hex')}`;
    const labels = { ...opts.labels };
    if (opts.expireAfterMs !== undefined) {
      labels['containerd.io/gc.expire'] = new Date(Date.now() + opts.expireAfterMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
    }
    const res = await this.#rpc.unary<{ lease: { id: string } | null }>('Leases', 'Create', { id, labels }, `lease create ${id}`);
    return res.lease?.id ?? id;
  }

  /** Delete a lease; `sync` waits for the garbage collection it triggers. */
  async deleteLease(id: string, sync = false): Promise<void> {
    await this.#rpc.unary('Leases', 'Delete', { id, sync }, `lease delete ${id}`);
  }

  // ---- snapshots

  async prepareSnapshot(snapshotter: string, key: string, parent: string, labels: Record<string, string> = {}): Promise<ContainerdMount[]> {
    const res = await this.#rpc.unary<{ mounts: ContainerdMount[] }>('Snapshots', 'Prepare', { snapshotter, key, parent, labels }, `snapshot prepare ${key}`);
    return fromWireMounts(res.mounts);
  }

  async statSnapshot(snapshotter: string, key: string): Promise<SnapshotRecord> {
    const res = await this.#rpc.unary<{ info: WireSnapshotInfo | null }>('Snapshots', 'Stat', { snapshotter, key }, `snapshot stat ${key}`);
    return fromWireSnapshot(res.info);
  }

  async commitSnapshot(snapshotter: string, name: string, key: string, labels: Record<string, string> = {}): Promise<void> {
    await this.#rpc.unary('Snapshots', 'Commit', { snapshotter, name, key, labels }, `snapshot commit ${name}`);
  }

  async removeSnapshot(snapshotter: string, key: string): Promise<void> {
    await this.#rpc.unary('Snapshots', 'Remove', { snapshotter, key }, `snapshot remove ${key}`);
  }

  async listSnapshots(snapshotter: string, filters: string[] = []): Promise<SnapshotRecord[]> {
    const msgs = await this.#rpc.collect<{ info: WireSnapshotInfo[] }>('Snapshots', 'List', { snapshotter, filters }, 'snapshot list');
    return msgs.flatMap((m) => m.info.map(fromWireSnapshot));
  }

  // ---- diff

  /** Apply a layer blob (already in the content store) onto mounts; returns the uncompressed descriptor. */
  async applyDiff(layer: ContainerdDescriptor, mounts: ContainerdMount[]): Promise<ContainerdDescriptor> {
    const req = { diff: toWireDesc(layer), mounts, payloads: {} };
    const res = await this.#rpc.unary<{ applied: WireDescriptor | null }>('Diff', 'Apply', req, `diff apply ${layer.digest}`, this.#applyTimeoutMs);
    return fromWireDesc(res.applied);
  }
}
