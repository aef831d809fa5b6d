/** Build the test images once (cached under .work/images by a content hash) and push them to a registry. */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../harness/snapshotter.js';
import { runCommand } from '../harness/run-command.js';
import { addBusyboxRootfs, busyboxHash } from './busybox-rootfs.js';
import { packLayer } from './layer-tar.js';
import { writeOciLayout, type ImageConfigOptions, type ImageInfo } from './oci-layout.js';
import { StagingTree } from './staging-tree.js';
import { TRICKY_LAYERS } from './tricky-image.js';

// Bump when the layout or tar options change in a way the function sources below do not show.
const BUILDER_VERSION = 1;
export const IMAGE_CACHE_DIR = join(REPO_ROOT, '.work', 'images');
const TAG = 'latest';

export interface ImageSpec {
  name: string;
  layers: Array<(t: StagingTree) => Promise<void>>;
  config: ImageConfigOptions;
}

export interface BuiltImage extends ImageInfo {
  name: string;
  /** OCI layout directory (`oci:DIR:TAG` for skopeo). */
  layoutDir: string;
}

export interface PushedImage extends BuiltImage {
  /** `127.0.0.1:PORT/clip-test/NAME:latest` */
  ref: string;
  /** The same image by digest. */
  digestRef: string;
}

export const IMAGE_SPECS = {
  busybox: { name: 'busybox', layers: [addBusyboxRootfs], config: { cmd: ['/bin/sh'] } },
  tricky: { name: 'tricky', layers: TRICKY_LAYERS, config: { cmd: ['/bin/sh'] } },
  // busybox plus one layer of its own: a layer no other test image has, for tests that need a
  // Prepare the daemon has not seen yet after busybox and tricky were pulled.
  layered: {
    name: 'layered',
    layers: [addBusyboxRootfs, async (t: StagingTree) => void t.file('etc/layered.txt', 'second layer\n')],
    config: { cmd: ['/bin/sh'] },
  },
} satisfies Record<string, ImageSpec>;

export type ImageName = keyof typeof IMAGE_SPECS;

function cacheKey(spec: ImageSpec): string {
  const h = createHash('sha256');
  for (const part of [String(BUILDER_VERSION), spec.name, busyboxHash(), JSON.stringify(spec.config), StagingTree.toString(), addBusyboxRootfs.toString(), ...spec.layers.map(String)]) h.update(part).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** Build `spec` into the cache unless an identical build is already there. */
export async function buildImage(spec: ImageSpec, cacheDir = IMAGE_CACHE_DIR): Promise<BuiltImage> {
  const layoutDir = join(cacheDir, `${spec.name}-${cacheKey(spec)}`);
  const infoPath = join(layoutDir, 'image-info.json');
  if (existsSync(infoPath)) return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name: spec.name, layoutDir };
  const work = `${layoutDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  try {
    const tars: string[] = [];
    for (const [i, populate] of spec.layers.entries()) {
      const tree = new StagingTree(join(work, 'stage', String(i)));
      await populate(tree);
      const tar = join(work, 'stage', `layer-${i}.tar`);
      await packLayer(tree.root, tar);
      tars.push(tar);
    }
    const info = writeOciLayout(join(work, 'layout'), TAG, tars, spec.config);
    writeFileSync(join(work, 'layout', 'image-info.json'), JSON.stringify(info, null, 2));
    // Concurrent test files may build the same image: whoever renames first wins, the other discards.
    try {
      renameSync(join(work, 'layout'), layoutDir);
    } catch (err) {
      if (!existsSync(infoPath)) throw err;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name: spec.name, layoutDir };
}

/** A registry to push to (the harness's Registry fits; `host` is `127.0.0.1:PORT`). */
export type PushTarget = ({ hostPort: string } | { host: string }) & {
  creds?: { username: string; password: string };
  /** skopeo `--dest-cert-dir`: `*.cert` + `*.key` client certificate for a registry that requires one. */
  certDir?: string;
};

const hostOf = (r: PushTarget): string => ('hostPort' in r ? r.hostPort : r.host);

/** `skopeo copy` a built layout to `registry` as `clip-test/NAME:latest`. */
export async function pushImage(image: BuiltImage, registry: PushTarget, cacheDir = IMAGE_CACHE_DIR, timeoutMs = 120_000): Promise<PushedImage> {
  const policy = join(cacheDir, 'skopeo-policy.json');
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const repo = `${hostOf(registry)}/clip-test/${image.name}`;
  const creds = [
    ...(registry.creds ? ['--dest-creds', `${registry.creds.username}:${registry.creds.password}`] : []),
    ...(registry.certDir ? ['--dest-cert-dir', registry.certDir] : []),
  ];
  await runCommand('skopeo', ['--policy', policy, 'copy', '--quiet', '--dest-tls-verify=false', ...creds, `oci:${image.layoutDir}:${image.tag}`, `docker://${repo}:${image.tag}`], { timeoutMs });
  return { ...image, ref: `${repo}:${image.tag}`, digestRef: `${repo}@${image.manifestDigest}` };
}

/** Build (or reuse) every test image and push it; returns name → pushed image. */
export async function buildAndPushImages(registry: PushTarget, names: ImageName[] = ['busybox', 'tricky']): Promise<Record<ImageName, PushedImage>> {
  const out: Partial<Record<ImageName, PushedImage>> = {};
  for (const name of names) out[name] = await pushImage(await buildImage(IMAGE_SPECS[name]), registry);
  return out as Record<ImageName, PushedImage>;
}
