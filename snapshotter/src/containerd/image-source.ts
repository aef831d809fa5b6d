/**
 * Where `pull` gets manifests and blobs: a small interface over the project's one registry client
 * (`registry/`), so a pull honours hosts.toml (mirrors, CAs, client certificates), every credential
 * source, retries and timeouts exactly as the daemon's lazy reads do. Tests of the puller use fakes.
 */
import type { RegistryClient } from '../registry/registry-client.js';
import type { RepositoryRef } from '../registry/reference.js';

/** A manifest or index as fetched, with its verified digest. */
export interface FetchedManifestBytes {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface ImageSource {
  /** The domain (as in the reference) and repository, for distribution-source labels. */
  readonly host: string;
  readonly repository: string;
  /** A manifest or index by tag or digest. */
  getManifest(reference: string): Promise<FetchedManifestBytes>;
  /** A small blob (config) into memory, verified against its digest. */
  getBlob(digest: string): Promise<Buffer>;
  /** A blob of `size` bytes from `offset` on, streamed (a whole blob is verified while streaming). */
  openBlob(digest: string, offset: number, size: number): AsyncIterable<Uint8Array>;
}

/** Image configs are small; anything bigger than this is refused before it is buffered. */
const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/** One repository of a registry, reached through a shared RegistryClient. */
export class RegistryImageSource implements ImageSource {
  readonly host: string;
  readonly repository: string;
  readonly #client: RegistryClient;
  readonly #repo: RepositoryRef;

  constructor(client: RegistryClient, domain: string, repository: string) {
    this.#client = client;
    this.host = domain;
    this.repository = repository;
    this.#repo = { domain, repository };
  }

  async getManifest(reference: string): Promise<FetchedManifestBytes> {
    const m = await this.#client.fetchManifest(this.#repo, reference);
    return { digest: m.descriptor.digest, mediaType: m.descriptor.mediaType, bytes: m.bytes };
  }

  async getBlob(digest: string): Promise<Buffer> {
    return this.#client.fetchBlobBytes(this.#repo, digest, { maxBytes: MAX_CONFIG_BYTES });
  }

  async *openBlob(digest: string, offset: number, size: number): AsyncIterable<Uint8Array> {
    if (offset >= size) return;
    const blob = offset > 0
      ? await this.#client.fetchBlob(this.#repo, digest, { range: { offset, length: size - offset }, size })
      : await this.#client.fetchBlob(this.#repo, digest, { size });
    for await (const chunk of blob.stream as AsyncIterable<Uint8Array>) yield chunk;
  }
}
