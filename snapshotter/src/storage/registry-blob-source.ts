/** The production BlobSource: layer blobs from the image's registry through the shared RegistryClient. */
import type { Readable } from 'node:stream';
import { parseReference, type RegistryClient, type RepositoryRef } from '../registry/index.js';
import type { BlobSource } from './blob-source.js';
import type { LayerRef } from './layer-reader.js';

/** The part of RegistryClient the read path uses. */
export type BlobClient = Pick<RegistryClient, 'fetchBlob' | 'statBlob'>;

/** Whole-blob GETs (digest-verified by the client while streaming) and HEADs for `check`. */
export class RegistryBlobSource implements BlobSource {
  /** The client's DigestVerifier fails a whole-blob stream before it ends on a wrong digest. */
  readonly verifiesDigest = true;
  readonly #client: BlobClient;

  constructor(client: BlobClient) {
    this.#client = client;
  }

  async open(ref: LayerRef, signal: AbortSignal): Promise<Readable> {
    const blob = await this.#client.fetchBlob(repoOf(ref), ref.digest, { signal });
    return blob.stream;
  }

  async fetchRange(ref: LayerRef, start: number, end: number, signal: AbortSignal): Promise<Buffer> {
    const blob = await this.#client.fetchBlob(repoOf(ref), ref.digest, { range: { offset: start, length: end - start }, signal });
    // The deadline covers the body too: a registry trickling a byte now and then never trips an
    // idle-body timeout, so the stream is torn down when the signal fires, whatever the transport does.
    const onAbort = (): void => void blob.stream.destroy(signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason)));
    if (signal.aborted) onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const parts: Buffer[] = [];
      for await (const chunk of blob.stream) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  async exists(ref: LayerRef, signal: AbortSignal): Promise<boolean> {
    return (await this.#client.statBlob(repoOf(ref), ref.digest, signal)) !== undefined;
  }
}

function repoOf(ref: LayerRef): RepositoryRef {
  const { domain, repository } = parseReference(ref.ref);
  return { domain, repository };
}
