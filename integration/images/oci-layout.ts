/** Assemble an OCI image layout (blobs/sha256, index.json, manifest, config) from layer tars. */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const MEDIA_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface LayerInfo {
  /** sha256 of the compressed blob. */
  digest: string;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  size: number;
  uncompressedSize: number;
}

export interface ImageInfo {
  tag: string;
  manifestDigest: string;
  configDigest: string;
  layers: LayerInfo[];
}

export interface ImageConfigOptions {
  cmd: string[];
  env?: string[];
  workingDir?: string;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function writeBlob(dir: string, data: Buffer): { digest: string; size: number } {
  const digest = sha256(data);
  writeFileSync(join(dir, 'blobs', 'sha256', digest.slice(7)), data);
  return { digest, size: data.length };
}

/** Write the layout into `dir` from uncompressed layer tars (bottom first); returns digests. */
export function writeOciLayout(dir: string, tag: string, layerTars: string[], cfg: ImageConfigOptions): ImageInfo {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layers = layerTars.map((path): LayerInfo => {
    const tar = readFileSync(path);
    const blob = writeBlob(dir, gzipSync(tar, { level: 6 }));
    return { digest: blob.digest, diffId: sha256(tar), size: blob.size, uncompressedSize: tar.length };
  });
  return writeImageManifest(dir, tag, layers, cfg);
}

/**
 * Write config, manifest and index.json into `dir` for layers whose gzip blobs are already in
 * `dir/blobs/sha256` (bottom first); returns digests.
 */
export function writeImageManifest(dir: string, tag: string, layers: LayerInfo[], cfg: ImageConfigOptions): ImageInfo {
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const config = {
    created: '2024-01-01T00:00:00Z',
    architecture: 'amd64',
    os: 'linux',
    config: { Cmd: cfg.cmd, Env: cfg.env ?? ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: cfg.workingDir ?? '/' },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `clip integration layer ${i + 1}` })),
  };
  const cfgBlob = writeBlob(dir, Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    config: { mediaType: MEDIA_CONFIG, digest: cfgBlob.digest, size: cfgBlob.size },
    layers: layers.map((l) => ({ mediaType: MEDIA_LAYER_GZIP, digest: l.digest, size: l.size })),
  };
  const manBlob = writeBlob(dir, Buffer.from(JSON.stringify(manifest)));
  const index = {
    schemaVersion: 2,
    manifests: [{ mediaType: MEDIA_MANIFEST, digest: manBlob.digest, size: manBlob.size, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  };
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  return { tag, manifestDigest: manBlob.digest, configDigest: cfgBlob.digest, layers };
}
