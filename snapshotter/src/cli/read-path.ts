/**
 * Assembling the read path from its config: registry client (with the CRI proxy that feeds it pull
 * secrets, when enabled), ContentCache, layer store, index resolution, start profiles and the lazy
 * layers over them — each built once and handed down, so
 * nothing reads config on its own and the ContentCache provably reaches the storage layer. The
 * FUSE server runs it; so does the daemon itself in `in_process` mode.
 */
import { join } from 'node:path';
import { createLayerIndexLookup } from '../artifact/index.js';
import type { Config } from '../config/index.js';
import type { ContainerdClient, ContentStoreLayerResolver } from '../containerd/index.js';
import { contentCacheStoreOptions, type ContentCache } from '../contentcache/index.js';
import { messageOf } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { RegistryClient, restorePort } from '../registry/index.js';
import { registryClientOptions } from './registry-options.js';
import { ClipRemoteLayers, IndexResolver, type ChainResolver } from '../remote/index.js';
import { LayerStore, QuarantineList, RegistryBlobSource } from '../storage/index.js';
import { StartTraces, recordVerificationFailure, setLayerMetricsSource } from '../telemetry/index.js';
import { layerMetricsSamples, startTraceHooks } from '../status/index.js';
import { randomAccessObserver } from '../zran/index.js';
import { StartProfiles } from '../prefetch/index.js';
import { clipLimitsOf } from './clip-limits.js';

/** Everything the read path owns, with its shutdown. */
export interface ReadPath {
  remote: ClipRemoteLayers;
  store: LayerStore;
  contentCache: ContentCache;
  registry: RegistryClient;
  starts: StartTraces;
  /** Unmount every layer, then close the stores (in that order). */
  close(log: Logger): Promise<void>;
}

/**
 * A chain-ID resolver per containerd namespace, created on first use. The containerd client (gRPC)
 * is loaded then too: most FUSE servers never need it (layers come with labels that name them), and
 * gRPC is a large share of what a process holds in memory.
 */
function chainResolver(cfg: Config, log: Logger): ChainResolver {
  const byNamespace = new Map<string, { client: ContainerdClient; resolver: ContentStoreLayerResolver }>();
  return async (chainId, namespace) => {
    const { ContainerdClient, ContentStoreLayerResolver, hostFromImages } = await import('../containerd/index.js');
    let r = byNamespace.get(namespace);
    if (!r) {
      const client = new ContainerdClient({ address: cfg.containerdAddress, namespace, timeoutMs: 10_000, logger: log });
      r = { client, resolver: new ContentStoreLayerResolver({ client, logger: log }) };
      byNamespace.set(namespace, r);
    }
    const found = await r.resolver.resolve(chainId);
    if (!found) return undefined;
    // The content source lost the port: hosts.toml first (the operator's word), then the names in
    // containerd's image store.
    let host = await restorePort(found.host, cfg.registry.configPath);
    if (!host.includes(':')) {
      const images = await r.client.listImages().catch((err: unknown) => {
        log.debug({ namespace, err: messageOf(err) }, 'image list for the registry port failed');
        return [];
      });
      const fromStore = hostFromImages(images, found.host, found.repository, found.manifestDigest);
      if (fromStore && fromStore !== host) log.debug({ host: found.host, registry: fromStore }, 'registry port from the image store');
      host = fromStore ?? host;
    }
    return { ref: `${host}/${found.repository}@${found.manifestDigest}`, layerDigest: found.layerDigest, manifestDigest: found.manifestDigest };
  };
}

/** Build the read path of `cfg`; `onExtracted` hears of each layer extracted to a plain directory. */
export async function openReadPath(cfg: Config, log: Logger, onExtracted?: (mountpoint: string) => void): Promise<ReadPath> {
  // Pull secrets the kubelet sends through the CRI proxy: the first credential source, the most
  // specific one (per repository, per pull). They must live where the registry is read: here.
  // Loaded only when enabled: the proxy is a gRPC server, and gRPC is a large share of a process's memory.
  const cri = cfg.cri.enabled ? await import('../cri/index.js') : undefined;
  const criCredentials = cri
    ? new cri.CapturedCredentials({ ttlMs: cfg.cri.credentialTtlS * 1000, maxEntries: cfg.cri.maxCredentials, maxBytes: cfg.cri.maxCredentialBytes })
    : undefined;
  // The layer store retries whole downloads itself; one retry here keeps the bound tight.
  const registry = new RegistryClient(registryClientOptions(cfg.registry, log, {
    maxRetries: Math.min(cfg.registry.maxRetries, 1),
    ...(criCredentials ? { credentialSources: [criCredentials] } : {}),
  }));
  // The one ContentCache of the process: handed to the layer store (reads, publishes) and to index
  // resolution (indexes shared across nodes), never created anywhere else.
  const { contentCache, onContentCacheUnavailable } = contentCacheStoreOptions(cfg.contentCache, log, process.env, (kind) =>
    recordVerificationFailure('content_cache', kind),
  );
  // Layers and indexes found out on this node stay refused across restarts.
  const quarantine = await QuarantineList.open(join(cfg.root, 'quarantine.json'), { log });
  const store = await LayerStore.create({
    cacheDir: join(cfg.root, 'cache', 'layers'),
    maxSizeBytes: cfg.cache.maxSizeBytes,
    blobs: new RegistryBlobSource(registry),
    contentCache,
    onContentCacheUnavailable,
    log,
    maxRetries: cfg.registry.maxRetries,
    readTimeoutMs: cfg.reads.timeoutMs,
    stallTimeoutMs: cfg.reads.stallTimeoutMs,
    backgroundRequestTimeoutMs: cfg.reads.backgroundRequestTimeoutMs,
    rangeRetryAfterMs: cfg.reads.rangeRetryAfterMs,
    rangeReads: cfg.index.rangeReads,
    rangeCompletionBytesPerSec: cfg.index.rangeCompletionBytesPerSec,
    rangeCompletionIdleMs: cfg.index.rangeCompletionIdleMs,
    rangeFetchAhead: { maxBytes: cfg.index.rangeFetchAheadBytes, targetMs: cfg.index.rangeFetchAheadMs },
    quarantine,
    spanBounds: { maxSpanBytes: cfg.index.maxSpanBytes, maxSpanCompressedBytes: cfg.index.maxSpanCompressedBytes },
    spanOffers: {
      idleMs: cfg.contentCache.spanOfferIdleMs,
      maxDelayMs: cfg.contentCache.spanOfferMaxDelayMs,
      maxHeldBytes: cfg.contentCache.spanOfferMaxHeldBytes,
      closeFlushMs: cfg.contentCache.spanOfferCloseFlushMs,
    },
    background: { idleMs: cfg.reads.backgroundIdleMs, maxDelayMs: cfg.reads.backgroundMaxDelayMs, runMs: cfg.reads.backgroundRunMs, fillYields: cfg.reads.backgroundFillYields },
  });
  setLayerMetricsSource(() => layerMetricsSamples(store.ledger.entries()));
  const starts = new StartTraces({ idleMs: cfg.tracing.startTraceIdleMs, maxMs: cfg.tracing.startTraceMaxMs, hooks: startTraceHooks(store.ledger) });
  // Start profiles live in the ContentCache: without one there is nowhere to share them.
  const profiles = cfg.prefetch.enabled && contentCache.name !== 'none'
    ? new StartProfiles({ contentCache, store, recordWindowMs: cfg.prefetch.recordWindowMs, maxBytes: cfg.prefetch.maxBytes, log })
    : undefined;
  const indexes = new IndexResolver({
    cacheDir: join(cfg.root, 'cache', 'indexes'),
    contentCache,
    registry,
    buildMissing: cfg.index.buildMissing,
    acceptForeign: cfg.index.acceptForeignIndexes,
    quarantine,
    limits: clipLimitsOf(cfg),
    findArtifact: createLayerIndexLookup(registry, { platform: cfg.registry.platform }),
    keepLayer: { spoolDir: join(cfg.root, 'cache', 'layers'), adopt: (ref, path) => store.adopt(ref, path) },
    // No gzip checkpoints here: this node downloads the whole layer to index it (and shares it
    // through the ContentCache), and with nowhere to publish a window pack they would sit inline,
    // making the index ~15 % of the layer at the default span. zstd frame tables cost ~100 B a span.
    ...(cfg.index.zstdFrameTables
      ? { compressedObserver: () => randomAccessObserver({ gzip: false, zstd: true, spanBytes: cfg.index.checkpointSpanBytes, minLayerBytes: cfg.index.checkpointMinLayerBytes, logger: log }) }
      : {}),
    ledger: store.ledger,
    log,
  });
  const remote = new ClipRemoteLayers({
    store,
    indexes,
    resolveChain: chainResolver(cfg, log),
    defaultNamespace: cfg.containerdNamespace,
    starts,
    ...(profiles ? { profiles } : {}),
    extractCompleted: cfg.cache.extractCompleted,
    fuseDriver: cfg.fuseServer.driver,
    readActivity: store.readActivity,
    checkIndexes: cfg.index.checkForeignIndexes,
    quarantine,
    limits: clipLimitsOf(cfg),
    ...(onExtracted ? { onExtracted } : {}),
  });
  // At start, not at a cold node's first Prepare, whose index look-up would wait for the handshake.
  contentCache.connect?.().catch((err: unknown) => log.warn({ source: 'content_cache', err: messageOf(err) }, 'ContentCache not reachable at start; each use tries again'));
  const criProxy = cri && criCredentials
    ? await cri.startCriProxy({ listen: cfg.cri.address, containerdAddress: cfg.cri.containerdAddress, credentials: criCredentials, log })
    : undefined;
  const close = async (closeLog: Logger): Promise<void> => {
    await criProxy?.stop();
    // Before the exporter's last flush: open start traces end with their summaries.
    starts.closeAll();
    // Mounts left behind would answer "transport endpoint is not connected" until the next start.
    await remote.unmountAll(closeLog);
    await profiles?.close();
    await store.close();
    await quarantine.flush();
    await contentCache.close();
    await registry.close();
  };
  return { remote, store, contentCache, registry, starts, close };
}
