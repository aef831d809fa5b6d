/**
 * chainID → (repository, layer digest) from containerd's content store, for pulls that send only
 * `containerd.io/snapshot.ref` (nerdctl, the Go client): by the time such a pull prepares layers,
 * its manifest (labelled with gc refs and the distribution source) and config are in the store.
 */
import { messageOf } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import { chainIds } from './chain-id.js';
import type { ContainerdClient } from './containerd-client.js';
import { LABEL_DISTRIBUTION_SOURCE_PREFIX, LABEL_GC_REF_CONFIG } from './labels.js';
import type { ContentInfo } from './types.js';

/** Everything needed to fetch one layer lazily. */
export interface ResolvedLayer {
  chainId: string;
  /** `<host>/<repository>@<manifest digest>`: enough to fetch blobs of this image. */
  ref: string;
  host: string;
  repository: string;
  layerDigest: string;
  layerMediaType: string;
  layerSize: number;
  diffId: string;
  index: number;
  manifestDigest: string;
  configDigest: string;
  /** All layer digests of the manifest, in order. */
  layerDigests: string[];
}

interface ManifestDoc { layers?: Array<{ digest?: string; mediaType?: string; size?: number }> }
interface ConfigDoc { rootfs?: { diff_ids?: string[] } }

/** The first `containerd.io/distribution.source.<host>=<repo>[,repo…]` label, split. */
export function distributionSource(labels: Record<string, string>): { host: string; repository: string } | undefined {
  for (const [k, v] of Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))) {
    if (!k.startsWith(LABEL_DISTRIBUTION_SOURCE_PREFIX)) continue;
    const repository = v.split(',')[0]?.trim();
    const host = k.slice(LABEL_DISTRIBUTION_SOURCE_PREFIX.length);
    if (host !== '' && repository) return { host, repository };
  }
  return undefined;
}

export interface ContentStoreLayerResolverOptions {
  client: Pick<ContainerdClient, 'listContent' | 'readContent'>;
  logger?: Logger;
}

/** Resolves chain IDs through the content store; results are cached, manifests are read once. */
export class ContentStoreLayerResolver {
  readonly #client: ContentStoreLayerResolverOptions['client'];
  readonly #logger: Logger;
  readonly #byChainId = new Map<string, ResolvedLayer>();
  readonly #indexedManifests = new Set<string>();
  #scan: Promise<void> | undefined;

  constructor(opts: ContentStoreLayerResolverOptions) {
    this.#client = opts.client;
    this.#logger = opts.logger ?? silentLogger();
  }

  /** The layer whose chain ID is `chainId`, or undefined when no stored image has it. */
  async resolve(chainId: string): Promise<ResolvedLayer | undefined> {
    const hit = this.#byChainId.get(chainId);
    if (hit) return hit;
    // One scan at a time; a caller arriving mid-scan waits for it and then scans for news.
    while (this.#scan) await this.#scan;
    const again = this.#byChainId.get(chainId);
    if (again) return again;
    this.#scan = this.#scanManifests().finally(() => {
      this.#scan = undefined;
    });
    await this.#scan;
    return this.#byChainId.get(chainId);
  }

  async #scanManifests(): Promise<void> {
    const manifests = await this.#client.listContent([`labels."${LABEL_GC_REF_CONFIG}"`]);
    for (const info of manifests) {
      if (this.#indexedManifests.has(info.digest)) continue;
      try {
        if (await this.#indexManifest(info)) this.#indexedManifests.add(info.digest);
      } catch (err) {
        // Config or manifest not (yet) readable: skip now, look again on the next miss.
        this.#logger.debug({ source: info.digest, err: messageOf(err) }, 'content store manifest skipped');
      }
    }
  }

  async #indexManifest(info: ContentInfo): Promise<boolean> {
    const configDigest = info.labels[LABEL_GC_REF_CONFIG];
    const src = distributionSource(info.labels);
    if (!configDigest || !src) return true;
    const manifest = JSON.parse((await this.#client.readContent(info.digest)).toString('utf8')) as ManifestDoc;
    const config = JSON.parse((await this.#client.readContent(configDigest)).toString('utf8')) as ConfigDoc;
    const diffIds = config.rootfs?.diff_ids ?? [];
    const layers = manifest.layers ?? [];
    if (diffIds.length !== layers.length) return true;
    const chains = chainIds(diffIds);
    const layerDigests = layers.map((l) => l.digest ?? '');
    chains.forEach((chainId, index) => {
      const layer = layers[index];
      if (!layer?.digest || this.#byChainId.has(chainId)) return;
      this.#byChainId.set(chainId, {
        chainId,
        ref: `${src.host}/${src.repository}@${info.digest}`,
        host: src.host,
        repository: src.repository,
        layerDigest: layer.digest,
        layerMediaType: layer.mediaType ?? '',
        layerSize: Number(layer.size ?? 0),
        diffId: diffIds[index] ?? '',
        index,
        manifestDigest: info.digest,
        configDigest,
        layerDigests,
      });
    });
    return true;
  }
}
