/**
 * Per-layer accounting of how a layer's bytes reached this node and its readers: which tier served
 * the reads, what was fetched from the registry and why (on demand, prefetch, background
 * completion, whole-layer download, index build), what came from the ContentCache, and when the
 * first read came. The answers of `clip-snapshotter status`, the per-image span attributes and
 * the `clip_layer_*` metrics are all read from here.
 */
import type { LayerRef, ReadSource } from './layer-reader.js';

/** Why registry bytes were fetched. */
export type FetchWay = 'on_demand' | 'prefetch' | 'background' | 'whole' | 'index_build';
export const FETCH_WAYS: readonly FetchWay[] = ['on_demand', 'prefetch', 'background', 'whole', 'index_build'];

/**
 * How a layer was served: `lazy` (only what reads needed, from registry ranges or the
 * ContentCache), `whole` (downloaded whole, to serve a read or to build its index), `local`
 * (complete on this node's disk before it was mounted), `unread` (mounted, nothing read yet).
 */
export type LayerMode = 'lazy' | 'whole' | 'local' | 'unread';

/** Counters of one layer; all bytes uncompressed except `registry` (compressed, as transferred). */
export interface LayerCounters {
  /** Bytes handed to reads, by the tier that served them. */
  served: Record<ReadSource, number>;
  /** Compressed bytes received from the registry, by why they were fetched. */
  registry: Record<FetchWay, number>;
  /** Uncompressed bytes received from the ContentCache (range reads and shared spans). */
  contentCache: number;
}

/** One layer as the ledger knows it. */
export interface LedgerEntry extends LayerCounters {
  diffId: string;
  digest: string;
  size: number;
  /** Image references this layer was opened for. */
  images: string[];
  /** When it was first opened in this process (epoch ms). */
  openedAt: number;
  /** Complete on disk when first opened. */
  localAtOpen: boolean;
  /** Epoch ms of the first read after it was opened, if any. */
  firstReadAt?: number;
}

interface Entry extends LedgerEntry {
  imageSet: Set<string>;
}

/** A copy of a layer's counters (for deltas over a period). */
export function snapshotCounters(c: LayerCounters): LayerCounters {
  return { served: { ...c.served }, registry: { ...c.registry }, contentCache: c.contentCache };
}

/** `b - a`, counter by counter. */
export function diffCounters(b: LayerCounters, a: LayerCounters | undefined): LayerCounters {
  if (!a) return snapshotCounters(b);
  const served = { ...b.served };
  for (const k of Object.keys(served) as ReadSource[]) served[k] -= a.served[k];
  const registry = { ...b.registry };
  for (const k of FETCH_WAYS) registry[k] -= a.registry[k];
  return { served, registry, contentCache: b.contentCache - a.contentCache };
}

/** The mode counters say, given whether the layer was complete on disk when opened. */
export function modeOf(c: LayerCounters, localAtOpen: boolean): LayerMode {
  if (c.registry.whole > 0 || c.registry.index_build > 0) return 'whole';
  if (c.registry.on_demand + c.registry.prefetch + c.registry.background > 0 || c.contentCache > 0) return 'lazy';
  if (localAtOpen || c.served.disk > 0) return 'local';
  return c.served.registry + c.served.content_cache > 0 ? 'lazy' : 'unread';
}

const HEX = /^sha256:([0-9a-f]{64})$/;
/** Layers remembered at most; the oldest unmounted ones are forgotten first. */
const MAX_ENTRIES = 4096;

/** The ledger of one LayerStore. */
export class LayerLedger {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** A reader was opened on `ref` (a mount); `complete` = the whole layer is on disk already. */
  opened(ref: LayerRef, complete: boolean): void {
    const e = this.#entry(ref);
    if (e && !e.imageSet.has(ref.ref)) {
      e.imageSet.add(ref.ref);
      e.images = [...e.imageSet];
    }
    if (e && e.served.disk + e.served.content_cache + e.served.registry === 0 && e.firstReadAt === undefined) e.localAtOpen ||= complete;
  }

  /** A read of layer `hex` served `bytes` from `source`. */
  read(hex: string, source: ReadSource, bytes: number): void {
    const e = this.#entries.get(hex);
    if (!e) return;
    e.served[source] += bytes;
    e.firstReadAt ??= this.#now();
    if (source === 'content_cache') e.contentCache += bytes;
  }

  /** `bytes` compressed bytes of layer `hex` arrived from the registry, for `way`. */
  fetched(hex: string, way: FetchWay, bytes: number, ref?: LayerRef): void {
    if (bytes <= 0) return;
    const e = this.#entries.get(hex) ?? (ref ? this.#entry(ref) : undefined);
    if (e) e.registry[way] += bytes;
  }

  /** Uncompressed bytes of layer `hex` taken from the ContentCache outside a tier read (shared spans). */
  shared(hex: string, bytes: number): void {
    const e = this.#entries.get(hex);
    if (e && bytes > 0) e.contentCache += bytes;
  }

  /** The entry of a diffID (`sha256:…`) or its hex. */
  get(diffIdOrHex: string): LedgerEntry | undefined {
    return this.#entries.get(HEX.exec(diffIdOrHex)?.[1] ?? diffIdOrHex);
  }

  /** Every layer known, oldest first. */
  entries(): LedgerEntry[] {
    return [...this.#entries.values()];
  }

  #entry(ref: LayerRef): Entry | undefined {
    const hex = HEX.exec(ref.diffId)?.[1];
    if (!hex) return undefined;
    let e = this.#entries.get(hex);
    if (!e) {
      if (this.#entries.size >= MAX_ENTRIES) {
        const oldest = this.#entries.keys().next().value;
        if (oldest !== undefined) this.#entries.delete(oldest);
      }
      e = {
        diffId: ref.diffId, digest: ref.digest, size: ref.uncompressedSize, imageSet: new Set([ref.ref]), images: [ref.ref],
        openedAt: this.#now(), localAtOpen: false,
        served: { disk: 0, content_cache: 0, registry: 0 },
        registry: { on_demand: 0, prefetch: 0, background: 0, whole: 0, index_build: 0 },
        contentCache: 0,
      };
      this.#entries.set(hex, e);
    }
    return e;
  }
}
