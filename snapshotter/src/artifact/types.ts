/** Shapes shared by the artifact builder, pusher and finder. */
import type { Descriptor, RegistryClient } from '../registry/index.js';

/** The part of `RegistryClient` this module uses; tests pass an in-memory fake. */
export type ArtifactRegistry = Pick<
  RegistryClient,
  'resolveImage' | 'getManifest' | 'fetchManifest' | 'fetchBlob' | 'fetchBlobBytes' | 'pushArtifact' | 'findReferrers'
>;

/** A layer's index blob as an artifact lists it. */
export interface LayerIndexDescriptor {
  /** Compressed digest of the image layer. */
  layerDigest: string;
  /** The layer's diffID, from the blob's annotation. */
  diffId: string | undefined;
  /** The index blob itself. */
  blob: Descriptor;
  /** The artifact manifest that lists the blob. */
  artifact: Descriptor;
}

/** One clip index artifact of a subject, with its blobs by layer digest. */
export interface IndexArtifact {
  descriptor: Descriptor;
  layers: ReadonlyMap<string, LayerIndexDescriptor>;
}

/** A layer's index, built now or taken from an existing artifact. */
export interface LayerIndexResult {
  digest: string;
  diffId: string;
  /** Compressed layer size from the image manifest. */
  size: number;
  /** The encoded index (`encodeIndex` output). */
  index: Buffer;
  /** The gzip window pack the index's checkpoint table refers to (zran/window-pack.ts), if any. */
  windowPack?: Buffer | undefined;
  entries: number;
  reused: boolean;
}

/** What `buildImageIndexes` produces for one image manifest. */
export interface ImageIndexes {
  /** `domain/repository` the image (and its artifact) lives in. */
  repo: string;
  /** The platform manifest the artifact refers to. */
  subject: Descriptor;
  layers: LayerIndexResult[];
  /** An existing artifact that already holds every layer's index, if there is one. */
  complete: Descriptor | undefined;
}

/** Progress of an indexing run, one event stream per image manifest. */
export type IndexProgress =
  | { type: 'image'; subject: Descriptor; layers: readonly Descriptor[] }
  | { type: 'layer-start'; layer: number; digest: string; totalBytes: number }
  | { type: 'layer-bytes'; layer: number; digest: string; bytes: number; totalBytes: number }
  | { type: 'layer-done'; layer: number; digest: string; reused: boolean; entries: number; indexBytes: number };
