/**
 * Images made for attacks: layer blobs, config diffIDs and manifest annotations chosen freely
 * (a config that lies about a layer, a layer annotated with labels for the snapshotter, a tar the
 * parser must refuse), pushed with the project's own registry client. Base layers are copied from
 * a built test image so containers can run.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { RegistryClient } from '../../snapshotter/src/registry/index.js';
import { MEDIA_CONFIG, MEDIA_LAYER_GZIP, MEDIA_MANIFEST, type BuiltImage } from '../images/index.js';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface CraftedLayer {
  /** The compressed blob as pushed. */
  blob: Buffer;
  /** What the image config says the layer's diffID is (the truth unless an attack says otherwise). */
  diffId: string;
  /** Manifest annotations of this layer (containerd copies `containerd.io/snapshot/*` into labels). */
  annotations?: Record<string, string>;
}

export interface CraftedImage {
  ref: string;
  manifestDigest: string;
  layers: Array<{ digest: string; diffId: string }>;
}

/** A gzip layer from an uncompressed tar, with its true diffID. */
export function gzipLayer(tar: Buffer): CraftedLayer {
  return { blob: gzipSync(tar, { level: 6 }), diffId: sha256(tar) };
}

/** The first layer of a built test image, as pushed by `pushImage` (busybox: a runnable base). */
export function baseLayerOf(image: BuiltImage): CraftedLayer {
  const l = image.layers[0];
  if (!l) throw new Error(`${image.name} has no layers`);
  return { blob: readFileSync(join(image.layoutDir, 'blobs', 'sha256', l.digest.slice(7))), diffId: l.diffId };
}

/** Push `layers` (bottom first) as `hostPort/clip-test/NAME:latest`. */
export async function pushCraftedImage(hostPort: string, name: string, layers: CraftedLayer[]): Promise<CraftedImage> {
  const repo = `${hostPort}/clip-test/${name}`;
  const client = new RegistryClient({ plainHttp: true });
  try {
    const pushed: Array<{ digest: string; size: number }> = [];
    for (const l of layers) pushed.push(await client.pushBlob(repo, { type: 'bytes', data: l.blob }));
    const config = Buffer.from(JSON.stringify({
      created: '2024-01-01T00:00:00Z', architecture: 'amd64', os: 'linux',
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    }));
    const cfg = await client.pushBlob(repo, { type: 'bytes', data: config });
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_MANIFEST,
      config: { mediaType: MEDIA_CONFIG, digest: cfg.digest, size: cfg.size },
      layers: layers.map((l, i) => ({
        mediaType: MEDIA_LAYER_GZIP, digest: pushed[i]!.digest, size: pushed[i]!.size, ...(l.annotations ? { annotations: l.annotations } : {}),
      })),
    }));
    const m = await client.pushManifest(repo, manifest, MEDIA_MANIFEST, 'latest');
    return { ref: `${repo}:latest`, manifestDigest: m.digest, layers: layers.map((l, i) => ({ digest: pushed[i]!.digest, diffId: l.diffId })) };
  } finally {
    await client.close();
  }
}
