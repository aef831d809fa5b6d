/** Push an OCI index with two platforms into one repository (blobs mounted across repositories). */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PushedImage } from '../images/index.js';

const MEDIA_INDEX = 'application/vnd.oci.image.index.v1+json';
const MEDIA_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

async function ok(res: Response, what: string): Promise<Response> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

const manifestBytes = (img: PushedImage): Buffer => readFileSync(join(img.layoutDir, 'blobs', 'sha256', img.manifestDigest.slice(7)));

/**
 * Put `other`'s manifest into `main`'s repository under its digest and push `repo:tag` as an index
 * listing `other` as linux/arm64 first and `main` as linux/amd64; returns the index digest.
 */
export async function pushTwoPlatformIndex(base: string, repo: string, fromRepo: string, main: PushedImage, other: PushedImage, tag: string): Promise<string> {
  for (const digest of [other.configDigest, ...other.layers.map((l) => l.digest)]) {
    await ok(await fetch(`${base}/v2/${repo}/blobs/uploads/?mount=${digest}&from=${fromRepo}`, { method: 'POST' }), `mount ${digest}`);
  }
  const otherBytes = manifestBytes(other);
  await ok(await fetch(`${base}/v2/${repo}/manifests/${other.manifestDigest}`, { method: 'PUT', headers: { 'content-type': MEDIA_MANIFEST }, body: otherBytes }), 'put manifest');
  const entry = (img: PushedImage, architecture: string) => ({
    mediaType: MEDIA_MANIFEST, digest: img.manifestDigest, size: manifestBytes(img).length, platform: { os: 'linux', architecture },
  });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_INDEX, manifests: [entry(other, 'arm64'), entry(main, 'amd64')] }));
  await ok(await fetch(`${base}/v2/${repo}/manifests/${tag}`, { method: 'PUT', headers: { 'content-type': MEDIA_INDEX }, body: index }), 'put index');
  return `sha256:${createHash('sha256').update(index).digest('hex')}`;
}
