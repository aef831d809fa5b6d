/**
 * The answers an operator asks of a node, per mounted layer: how much of it is here, where its
 * bytes came from, whether the rest is still arriving. Built from the mounts, the layer store's
 * presence and its ledger; also the per-layer metrics samples and the start-trace summaries.
 */
import type { Attributes } from '@opentelemetry/api';
import type { ExtractedLayers, LayerRef, LayerStore, LedgerEntry } from '../storage/index.js';
import { FETCH_WAYS, diffCounters, modeOf, snapshotCounters, type FetchWay, type LayerCounters, type LayerMode } from '../storage/index.js';
import {
  ATTR_CLIP_FETCHED_PREFIX, ATTR_CLIP_IMAGE_LAYERS_PREFIX, ATTR_CLIP_LAYER_DIGEST, ATTR_CLIP_LAYER_MODE, ATTR_CLIP_LAYER_SIZE,
  ATTR_CLIP_SERVED_PREFIX, type LayerMetricsSample, type StartTraceHooks,
} from '../telemetry/index.js';

/** One mounted layer, as `clip-snapshotter status` prints it. */
export interface LayerStatus {
  image: string;
  layer: string;
  diffId: string;
  size: number;
  /** Mounts of it on this node (one per committed snapshot). */
  mounts: number;
  /** Uncompressed bytes on this node's disk. */
  presentBytes: number;
  complete: boolean;
  /** Background completion or a whole-layer download is fetching the rest. */
  completing: boolean;
  /** Extracted to a plain directory: containers started now get it as a lower dir, without FUSE. */
  extracted?: boolean;
  mode: LayerMode;
  /** Bytes handed to reads, by the tier that served them. */
  served: LayerCounters['served'];
  /** Bytes fetched: registry ways (compressed) and `content_cache` (uncompressed). */
  fetched: Record<FetchWay | 'content_cache', number>;
  /** From the layer's mount (first open in this daemon) to its first read. */
  timeToFirstReadMs?: number;
}

/** What the report needs from the daemon. */
export interface StatusSources {
  mounted(): Array<{ layer: LayerRef }>;
  store: Pick<LayerStore, 'presence' | 'ledger'> & { extracted?: Pick<ExtractedLayers, 'has'> };
}

const fetchedOf = (c: LayerCounters): Record<FetchWay | 'content_cache', number> => ({ ...c.registry, content_cache: c.contentCache });

/** Every mounted layer (of `image`, when given: matched on the reference or its repository). */
export async function layerStatus(src: StatusSources, image?: string): Promise<LayerStatus[]> {
  const byLayer = new Map<string, { ref: LayerRef; mounts: number }>();
  for (const { layer } of src.mounted()) {
    if (image !== undefined && !imageMatches(layer.ref, image)) continue;
    const key = `${layer.ref} ${layer.diffId}`;
    const seen = byLayer.get(key);
    if (seen) seen.mounts++;
    else byLayer.set(key, { ref: layer, mounts: 1 });
  }
  const out: LayerStatus[] = [];
  for (const { ref, mounts } of byLayer.values()) {
    const p = await src.store.presence(ref);
    const e = src.store.ledger.get(ref.diffId);
    const counters = e ?? emptyCounters();
    out.push({
      image: ref.ref, layer: ref.digest, diffId: ref.diffId, size: ref.uncompressedSize, mounts,
      presentBytes: p.presentBytes, complete: p.complete, completing: p.completing,
      ...(src.store.extracted ? { extracted: src.store.extracted.has(ref.diffId.slice('sha256:'.length)) } : {}),
      mode: modeOf(counters, e?.localAtOpen ?? false),
      served: { ...counters.served }, fetched: fetchedOf(counters),
      ...(e?.firstReadAt !== undefined ? { timeToFirstReadMs: e.firstReadAt - e.openedAt } : {}),
    });
  }
  return out;
}

/** `image` names `ref` exactly, or its repository (`host/repo`, any tag or digest). */
export function imageMatches(ref: string, image: string): boolean {
  if (ref === image) return true;
  const repo = (r: string): string => r.replace(/@sha256:[0-9a-f]{64}$/, '').replace(/:[^/:]+$/, '');
  return repo(ref) === repo(image) || ref.endsWith(`/${image}`) || repo(ref).endsWith(`/${repo(image)}`);
}

/** The per-image, per-layer metric samples of every layer the ledger knows. */
export function layerMetricsSamples(entries: LedgerEntry[]): LayerMetricsSample[] {
  const out: LayerMetricsSample[] = [];
  for (const e of entries) {
    const mode = modeOf(e, e.localAtOpen);
    for (const image of e.images) {
      out.push({
        image, layer: e.digest, fetched: fetchedOf(e), served: { ...e.served },
        ...(mode === 'unread' ? {} : { lazy: mode === 'lazy' ? 1 : 0 }),
        ...(e.firstReadAt !== undefined ? { firstReadSeconds: (e.firstReadAt - e.openedAt) / 1000 } : {}),
      });
    }
  }
  return out;
}

/** Start-trace summaries from the ledger: what each layer did during the trace. */
export function startTraceHooks(ledger: LayerStore['ledger']): StartTraceHooks {
  return {
    baseline: (diffId, startedAtMs) => {
      const e = ledger.get(diffId);
      // First seen during this trace (e.g. downloaded to build its index under the Prepare): all of it counts.
      return e && e.openedAt < startedAtMs ? snapshotCounters(e) : undefined;
    },
    summarize: (diffId, baseline) => {
      const e = ledger.get(diffId);
      if (!e) return {};
      // Over the trace only: a warm start that read only the disk is `local`, whatever came before.
      const delta = diffCounters(e, baseline as LayerCounters | undefined);
      return {
        [ATTR_CLIP_LAYER_DIGEST]: e.digest,
        [ATTR_CLIP_LAYER_SIZE]: e.size,
        [ATTR_CLIP_LAYER_MODE]: modeOf(delta, false),
        ...counterAttrs(delta),
      };
    },
    summarizeImage: (layers) => {
      const attrs: Attributes = {};
      for (const mode of ['lazy', 'whole', 'local', 'unread']) attrs[`${ATTR_CLIP_IMAGE_LAYERS_PREFIX}${mode}`] = layers.filter((l) => l[ATTR_CLIP_LAYER_MODE] === mode).length;
      for (const l of layers) {
        for (const [k, v] of Object.entries(l)) {
          if ((k.startsWith(ATTR_CLIP_FETCHED_PREFIX) || k.startsWith(ATTR_CLIP_SERVED_PREFIX)) && typeof v === 'number') attrs[k] = ((attrs[k] as number | undefined) ?? 0) + v;
        }
      }
      return attrs;
    },
  };
}

function counterAttrs(c: LayerCounters): Attributes {
  const attrs: Attributes = {};
  for (const way of FETCH_WAYS) attrs[`${ATTR_CLIP_FETCHED_PREFIX}${way}`] = c.registry[way];
  attrs[`${ATTR_CLIP_FETCHED_PREFIX}content_cache`] = c.contentCache;
  for (const [tier, v] of Object.entries(c.served)) attrs[`${ATTR_CLIP_SERVED_PREFIX}${tier}`] = v;
  return attrs;
}

function emptyCounters(): LayerCounters {
  return {
    served: { disk: 0, content_cache: 0, registry: 0 },
    registry: { on_demand: 0, prefetch: 0, background: 0, whole: 0, index_build: 0 },
    contentCache: 0,
  };
}
