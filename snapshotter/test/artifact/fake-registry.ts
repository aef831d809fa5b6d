/** An in-memory registry with the `ArtifactRegistry` surface, recording what callers do. */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import type { ArtifactRegistry } from '../../src/artifact/index.js';
import { notFound } from '../../src/errors/index.js';
import {
  EMPTY_JSON_BYTES, MEDIA_TYPE_OCI_EMPTY, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, parseManifest, parsePlatform, parseReference,
  selectPlatformManifest, type BlobStream, type Descriptor, type FetchedManifest, type ImageIndex, type ImageManifest, type ImageReference,
  type Platform, type ResolvedImage,
} from '../../src/registry/index.js';
import { member, tar } from '../clip/tar-fixtures.js';

type Client = ArtifactRegistry;

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A layer: its tar and the gzip blob the registry serves. */
export interface FakeLayer {
  tar: Buffer;
  blob: Buffer;
  digest: string;
  diffId: string;
}

/** A small gzip layer whose one file's content is `content`. */
export function fakeLayer(name: string, content: string): FakeLayer {
  const t = tar(member({ name: './', type: '5', mode: 0o755 }), member({ name: `./${name}` }, content));
  const blob = gzipSync(t);
  return { tar: t, blob, digest: sha256(blob), diffId: sha256(t) };
}

export class FakeRegistry implements Client {
  blobs = new Map<string, Buffer>();
  manifests = new Map<string, { mediaType: string; bytes: Buffer }>();
  tags = new Map<string, string>();
  referrers = new Map<string, Descriptor[]>();
  calls = { findReferrers: 0, fetchManifest: 0, fetchBlob: 0, fetchBlobBytes: 0, pushArtifact: 0 };
  inFlightBlobs = 0;
  maxInFlightBlobs = 0;
  /** When set, each layer stream waits for it before its data (so downloads overlap for certain). */
  blobGate: Promise<void> | undefined;

  putBlob(data: Buffer): Descriptor {
    const digest = sha256(data);
    this.blobs.set(digest, data);
    return { mediaType: 'application/octet-stream', digest, size: data.length };
  }

  putManifest(doc: object, mediaType: string, tag?: string): Descriptor {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = sha256(bytes);
    this.manifests.set(digest, { mediaType, bytes });
    if (tag !== undefined) this.tags.set(tag, digest);
    return { mediaType, digest, size: bytes.length };
  }

  /** Push an image; `diffIds` overrides what the config claims. */
  putImage(layers: FakeLayer[], tag = 'latest', diffIds = layers.map((l) => l.diffId)): Descriptor {
    const config = this.putBlob(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } })));
    for (const l of layers) this.blobs.set(l.digest, l.blob);
    const manifest: ImageManifest = {
      schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { ...config, mediaType: 'application/vnd.oci.image.config.v1+json' },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.blob.length })),
    };
    return this.putManifest(manifest, MEDIA_TYPE_OCI_MANIFEST, tag);
  }

  putIndex(entries: Array<{ desc: Descriptor; platform: Platform }>, tag: string): Descriptor {
    const index: ImageIndex = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: entries.map((e) => ({ ...e.desc, platform: e.platform })) };
    return this.putManifest(index, MEDIA_TYPE_OCI_INDEX, tag);
  }

  #manifest(tagOrDigest: string): FetchedManifest {
    const digest = tagOrDigest.includes(':') ? tagOrDigest : this.tags.get(tagOrDigest);
    const m = digest === undefined ? undefined : this.manifests.get(digest);
    if (m === undefined || digest === undefined) throw notFound('CLIP_REGISTRY_NOT_FOUND', `manifest ${tagOrDigest}: not found`);
    return parseManifest(m.bytes, m.mediaType, digest, `manifest ${tagOrDigest}`);
  }

  getManifest: Client['getManifest'] = async (ref) => {
    const r = typeof ref === 'string' ? parseReference(ref) : ref;
    return this.#manifest(r.digest ?? r.tag ?? 'latest');
  };

  fetchManifest: Client['fetchManifest'] = async (_repo, tagOrDigest) => {
    this.calls.fetchManifest++;
    return this.#manifest(tagOrDigest);
  };

  resolveImage: Client['resolveImage'] = async (ref, opts = {}) => {
    const r: ImageReference = typeof ref === 'string' ? parseReference(ref) : ref;
    const root = await this.getManifest(r);
    if (root.type === 'manifest') return { reference: r, root: root.descriptor, descriptor: root.descriptor, manifest: root.manifest } satisfies ResolvedImage;
    const want = typeof opts.platform === 'string' ? parsePlatform(opts.platform) : opts.platform ?? parsePlatform('linux/amd64');
    const picked = selectPlatformManifest(root.index.manifests, want);
    if (!picked) throw notFound('CLIP_REGISTRY_PLATFORM_NOT_FOUND', 'no such platform');
    const child = this.#manifest(picked.digest);
    if (child.type !== 'manifest') throw new Error('nested index');
    return { reference: r, root: root.descriptor, descriptor: child.descriptor, manifest: child.manifest };
  };

  fetchBlobBytes: Client['fetchBlobBytes'] = async (_repo, digest) => {
    this.calls.fetchBlobBytes++;
    const b = this.blobs.get(digest);
    if (b === undefined) throw notFound('CLIP_REGISTRY_NOT_FOUND', `blob ${digest}: not found`);
    return b;
  };

  fetchBlob: Client['fetchBlob'] = async (_repo, digest) => {
    this.calls.fetchBlob++;
    const b = this.blobs.get(digest);
    if (b === undefined) throw notFound('CLIP_REGISTRY_NOT_FOUND', `blob ${digest}: not found`);
    this.inFlightBlobs++;
    this.maxInFlightBlobs = Math.max(this.maxInFlightBlobs, this.inFlightBlobs);
    const gate = this.blobGate;
    const done = (): void => void this.inFlightBlobs--;
    const stream = Readable.from((async function* () {
      try {
        await gate;
        for (let i = 0; i < b.length; i += 1000) yield b.subarray(i, i + 1000);
      } finally {
        done();
      }
    })());
    return { stream, size: b.length, offset: 0, length: b.length } satisfies BlobStream;
  };

  findReferrers: Client['findReferrers'] = async (_repo, subject, artifactType) => {
    this.calls.findReferrers++;
    return (this.referrers.get(subject) ?? []).filter((d) => artifactType === undefined || d.artifactType === artifactType);
  };

  pushArtifact: Client['pushArtifact'] = async (opts) => {
    this.calls.pushArtifact++;
    const config = { ...this.putBlob(EMPTY_JSON_BYTES), mediaType: MEDIA_TYPE_OCI_EMPTY };
    const layers = opts.blobs.map((b) => ({ ...this.putBlob(b.data ?? Buffer.alloc(0)), mediaType: b.mediaType, ...(b.annotations ? { annotations: b.annotations } : {}) }));
    const manifest: ImageManifest = {
      schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_MANIFEST, artifactType: opts.artifactType, config, layers, subject: opts.subject,
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
    };
    const desc = { ...this.putManifest(manifest, MEDIA_TYPE_OCI_MANIFEST), artifactType: opts.artifactType };
    const list = this.referrers.get(opts.subject.digest) ?? [];
    if (!list.some((d) => d.digest === desc.digest)) list.push(desc);
    this.referrers.set(opts.subject.digest, list);
    return desc;
  };
}
