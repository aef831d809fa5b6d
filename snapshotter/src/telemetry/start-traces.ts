/**
 * Start traces: one trace per image start. containerd sends proxy snapshotters no trace context,
 * so every Snapshots RPC and every FUSE read would otherwise be a trace of its own. The first
 * Prepare of an image (its labels name the image, or its parent belongs to one) opens a root span
 * `clip.start`; later RPCs whose key or parent belongs to that image join it — the snapshot chain
 * is followed: layer N+1's parent is layer N's name, the container's Prepare has the top layer as
 * parent, Commit maps a key to its name — and so do reads of the layers mounted for it. The trace
 * closes after `idleMs` without such activity (at most `maxMs` after it opened); then the
 * per-image answers go on the root and one `clip.layer.summary` span per layer is added.
 */
import { context, createContextKey, ROOT_CONTEXT, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';
import { ATTR_CLIP_IMAGE_REF, ATTR_CLIP_LAYER_DIFF_ID, ATTR_CLIP_TIME_TO_FIRST_READ_MS, SPAN_LAYER_SUMMARY, SPAN_START } from './attributes.js';
import { tracer, tracingEnabled } from './tracing.js';

const LABEL_SNAPSHOT_REF = 'containerd.io/snapshot.ref';
// The labels that name an image, in the order layer-labels.ts reads them.
const IMAGE_LABELS = [
  'containerd.io/snapshot/clip.image-ref',
  'containerd.io/snapshot/cri.image-ref',
  'containerd.io/snapshot/remote/stargz.reference',
];
/** Snapshot names remembered (key or name → image), oldest forgotten first. */
const MAX_NAMES = 8192;
const SESSION = createContextKey('clip.start-trace');

/** What the daemon adds at the end of a start trace, from its layer accounting. */
export interface StartTraceHooks {
  /** An opaque baseline of a layer's counters when the trace first touched it (opened at `startedAtMs`). */
  baseline(diffId: string, startedAtMs: number): unknown;
  /** Attributes of one layer over the trace (what changed since `baseline`). */
  summarize(diffId: string, baseline: unknown): Attributes;
  /** Attributes of the image from all its layers' summaries. */
  summarizeImage(layers: Attributes[]): Attributes;
}

export interface StartTracesOptions {
  /** Close a start trace after this long without activity. */
  idleMs: number;
  /** Close it at the latest this long after it opened. */
  maxMs: number;
  hooks?: StartTraceHooks;
}

interface LayerInTrace {
  baseline: unknown;
  /** Epoch ms of its first read under this trace. */
  firstReadAt?: number;
}

/** One open start trace. */
export class StartTrace {
  readonly image: string;
  readonly startedAt = Date.now();
  readonly #span: Span;
  /** Parent for spans that join: a non-recording wrapper, so disk-hit sampling stays as it is. */
  readonly context: Context;
  /** Parent that forces a span (the recording root): the first read of each layer. */
  readonly #forcing: Context;
  readonly layers = new Map<string, LayerInTrace>();
  readonly #owner: StartTraces;
  #idle: NodeJS.Timeout | undefined;
  readonly #max: NodeJS.Timeout;
  #closed = false;

  constructor(owner: StartTraces, image: string, idleMs: number, maxMs: number) {
    this.#owner = owner;
    this.image = image;
    this.#span = tracer().startSpan(SPAN_START, { root: true, attributes: { [ATTR_CLIP_IMAGE_REF]: image } }, ROOT_CONTEXT);
    const base = ROOT_CONTEXT.setValue(SESSION, this);
    this.context = trace.setSpanContext(base, this.#span.spanContext());
    this.#forcing = trace.setSpan(base, this.#span);
    this.#max = setTimeout(() => owner.close(this), maxMs);
    this.#max.unref();
    this.touch(idleMs);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Activity: the idle deadline moves. */
  touch(idleMs = this.#owner.idleMs): void {
    if (this.#closed) return;
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.#owner.close(this), idleMs);
    this.#idle.unref();
  }

  /** A layer mounted or read under this trace. */
  addLayer(diffId: string): LayerInTrace {
    let l = this.layers.get(diffId);
    if (!l) this.layers.set(diffId, (l = { baseline: this.#owner.hooks?.baseline(diffId, this.startedAt) }));
    return l;
  }

  /** The context a read of `diffId` runs in: the first read of each layer is always spanned. */
  readContext(diffId: string): Context {
    this.touch();
    const l = this.addLayer(diffId);
    if (l.firstReadAt !== undefined) return this.context;
    l.firstReadAt = Date.now();
    return this.#forcing;
  }

  /** End the root span with the per-image answers, after one summary span per layer. */
  end(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idle);
    clearTimeout(this.#max);
    const hooks = this.#owner.hooks;
    if (hooks) {
      const layerAttrs: Attributes[] = [];
      for (const [diffId, l] of this.layers) {
        const attrs: Attributes = { ...hooks.summarize(diffId, l.baseline), [ATTR_CLIP_IMAGE_REF]: this.image, [ATTR_CLIP_LAYER_DIFF_ID]: diffId };
        if (l.firstReadAt !== undefined) attrs[ATTR_CLIP_TIME_TO_FIRST_READ_MS] = l.firstReadAt - this.startedAt;
        layerAttrs.push(attrs);
        tracer().startSpan(SPAN_LAYER_SUMMARY, { attributes: attrs, startTime: this.startedAt }, this.context).end();
      }
      this.#span.setAttributes(hooks.summarizeImage(layerAttrs));
    }
    const first = firstReadOf(this.layers);
    if (first !== undefined) this.#span.setAttribute(ATTR_CLIP_TIME_TO_FIRST_READ_MS, first - this.startedAt);
    this.#span.end();
  }
}

/** The start traces of one daemon. */
export class StartTraces {
  readonly idleMs: number;
  readonly maxMs: number;
  readonly hooks: StartTraceHooks | undefined;
  readonly #imageOf = new Map<string, string>();
  readonly #open = new Map<string, StartTrace>();

  constructor(o: StartTracesOptions) {
    this.idleMs = o.idleMs;
    this.maxMs = o.maxMs;
    this.hooks = o.hooks;
  }

  /**
   * The parent context of a Snapshots RPC: its image's start trace (opened by a Prepare or View
   * that names or descends from an image), or undefined to leave the RPC a trace of its own.
   */
  rpcContext(method: string, req: { key?: string; parent?: string; name?: string; labels?: Record<string, string> }): Context | undefined {
    if (!tracingEnabled()) return undefined;
    const key = req.key ?? '';
    let image: string | undefined;
    if (method === 'Prepare' || method === 'View') {
      const labels = req.labels ?? {};
      image = IMAGE_LABELS.map((l) => labels[l]).find((v) => v !== undefined && v !== '') ?? this.#lookup(req.parent);
      const chain = labels[LABEL_SNAPSHOT_REF];
      // A layer whose dialect names no image (snapshot.ref only) starts a trace under its chain.
      if (image === undefined && chain) image = `chain:${chain}`;
      if (image === undefined) return undefined;
      this.#remember(key, image);
      if (chain) this.#remember(chain, image);
      return this.#openFor(image, true)?.context;
    }
    if (method === 'Commit' && req.name) {
      image = this.#lookup(key);
      if (image !== undefined) this.#remember(req.name, image);
    } else {
      image = this.#lookup(key || req.name);
    }
    return image === undefined ? undefined : this.#openFor(image, false)?.context;
  }

  /** The start trace the active context belongs to (a mount runs inside its Prepare RPC). */
  active(): StartTrace | undefined {
    const t = context.active().getValue(SESSION) as StartTrace | undefined;
    return t && !t.closed ? t : undefined;
  }

  /** The open start trace of `image`, if any. */
  openTrace(image: string): StartTrace | undefined {
    return this.#open.get(image);
  }

  /** Close a start trace (idle, max age, shutdown). */
  close(t: StartTrace): void {
    if (this.#open.get(t.image) === t) this.#open.delete(t.image);
    t.end();
  }

  /** Close every open start trace (daemon shutdown, before the exporter flushes). */
  closeAll(): void {
    for (const t of [...this.#open.values()]) this.close(t);
  }

  #openFor(image: string, create: boolean): StartTrace | undefined {
    const open = this.#open.get(image);
    if (open) {
      open.touch();
      return open;
    }
    if (!create) return undefined;
    const t = new StartTrace(this, image, this.idleMs, this.maxMs);
    this.#open.set(image, t);
    return t;
  }

  #lookup(name: string | undefined): string | undefined {
    return name ? this.#imageOf.get(name) : undefined;
  }

  #remember(name: string, image: string): void {
    if (!name) return;
    this.#imageOf.delete(name);
    this.#imageOf.set(name, image);
    if (this.#imageOf.size > MAX_NAMES) {
      const oldest = this.#imageOf.keys().next().value;
      if (oldest !== undefined) this.#imageOf.delete(oldest);
    }
  }
}

function firstReadOf(layers: Map<string, LayerInTrace>): number | undefined {
  let first: number | undefined;
  for (const l of layers.values()) if (l.firstReadAt !== undefined) first = Math.min(first ?? l.firstReadAt, l.firstReadAt);
  return first;
}
