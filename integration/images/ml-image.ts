/**
 * The ML-sized benchmark image (issue 15): Debian bookworm minbase with Debian's PyTorch, SciPy and
 * pandas, packed as four layers (base, native libraries, the rest of /usr, Python packages), plus a
 * fifth layer holding one incompressible weights file (/models/weights.bin).
 *
 * Built once per machine and cached OUTSIDE the checkout (CI clones are fresh, images are large):
 *   $CLIP_BENCH_IMAGES (default /var/cache/clip-snapshotter/bench-images)/
 *     ml-base-<recipe hash>/      the four Debian layers' gzip blobs and their LayerInfo (layers.json)
 *     ml-<recipe hash>-w<MiB>/    an OCI layout: those blobs (hard links) + a weights layer of MiB
 * The recipe hash covers the package list, the layer split and this builder's version, so a change
 * to any of them builds anew; the weights size only adds a layer, so the quick mode's small-weights
 * image reuses the Debian layers.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createWriteStream, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { BuiltImage } from './build-images.js';
import { debianMirror, rootfsTars, ROOTFS_TAR_FLAGS as TAR_FLAGS } from './debian-rootfs.js';
import { LAYER_MTIME } from './layer-tar.js';
import { writeImageManifest, type ImageInfo, type LayerInfo } from './oci-layout.js';
import { unmountAllUnder } from '../harness/mounts.js';
import { runCommand } from '../harness/run-command.js';

export const ML_IMAGE_NAME = 'ml-torch';
/** Bump when the layout, tar or compression options change in a way the recipe below does not show. */
const BUILDER_VERSION = 1;
/** Debian packages on top of minbase: the framework the workload imports and its usual neighbours. */
export const ML_PACKAGES = ['python3', 'python3-torch', 'python3-scipy', 'python3-pandas'];
/** The path of the weights file inside the image. */
export const WEIGHTS_PATH = '/models/weights.bin';
const LIBDIR = 'usr/lib/x86_64-linux-gnu';

/** Where built bench images are kept (outside any checkout). */
export function benchImageCache(): string {
  return process.env.CLIP_BENCH_IMAGES || '/var/cache/clip-snapshotter/bench-images';
}

/** sha256 over everything that decides the Debian layers' content and split. */
export function mlRecipeHash(): string {
  const h = createHash('sha256');
  for (const part of [String(BUILDER_VERSION), 'bookworm', 'minbase', ...ML_PACKAGES, TAR_FLAGS.join(' '), packDebianLayers.toString(), rootfsTars.toString()]) h.update(part).update('\0');
  return h.digest('hex').slice(0, 16);
}

/** `sha256:HEX` of a file, by sha256sum (streams; files here are up to several GB). */
async function fileDigest(path: string): Promise<string> {
  const out = (await runCommand('sha256sum', ['--', path], { timeoutMs: 900_000 })).stdout;
  return `sha256:${out.slice(0, 64)}`;
}

/** gzip `tar` into `blobsDir` (pigz, -n so the blob depends on the bytes only); returns its LayerInfo. */
async function gzipLayer(tar: string, blobsDir: string): Promise<LayerInfo> {
  const tmp = join(blobsDir, `.tmp-${process.pid}.gz`);
  await runCommand('sh', ['-c', 'pigz -n -6 -p 2 -c -- "$1" > "$2"', 'gzip', tar, tmp], { timeoutMs: 1_800_000 });
  const [diffId, digest] = [await fileDigest(tar), await fileDigest(tmp)];
  renameSync(tmp, join(blobsDir, digest.slice(7)));
  return { digest, diffId, size: statSync(join(blobsDir, digest.slice(7))).size, uncompressedSize: statSync(tar).size };
}

/** The four Debian layers, built once per recipe; returns the directory holding blobs/ and layers.json. */
async function buildDebianLayers(progress: (line: string) => void): Promise<{ dir: string; layers: LayerInfo[] }> {
  const dir = join(benchImageCache(), `ml-base-${mlRecipeHash()}`);
  const infoPath = join(dir, 'layers.json');
  if (existsSync(infoPath)) return { dir, layers: JSON.parse(readFileSync(infoPath, 'utf8')) as LayerInfo[] };
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'blobs'), { recursive: true });
  const rootfs = join(work, 'rootfs');
  try {
    const mirror = debianMirror();
    progress(`debootstrap --variant=minbase --include=${ML_PACKAGES.join(',')} bookworm (mirror ${mirror}; several minutes, once per machine)`);
    await runCommand('debootstrap', ['--variant=minbase', `--include=${ML_PACKAGES.join(',')}`, 'bookworm', rootfs, mirror], { timeoutMs: 3_600_000 });
    rmSync(join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
    mkdirSync(join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
    progress('packing four layers: base, native libraries, the rest of /usr, Python packages');
    const tars = await packDebianLayers(rootfs, work);
    rmSync(rootfs, { recursive: true, force: true });
    const layers: LayerInfo[] = [];
    for (const tar of tars) {
      progress(`compressing ${tar.split('/').pop()} (${(statSync(tar).size / 1e6).toFixed(0)} MB)`);
      layers.push(await gzipLayer(tar, join(work, 'blobs')));
      rmSync(tar);
    }
    writeFileSync(join(work, 'layers.json'), JSON.stringify(layers, null, 2));
    renameSync(work, dir);
    return { dir, layers };
  } finally {
    // An interrupted debootstrap can leave /proc or /sys mounted inside the target.
    await unmountAllUnder(work);
    rmSync(work, { recursive: true, force: true });
  }
}

/** Split the rootfs into four layer tars; every layer carries the parent directories it needs. */
async function packDebianLayers(rootfs: string, work: string): Promise<string[]> {
  const { base, python, tar } = rootfsTars(rootfs, work, 1_800_000);
  return [
    await tar('base', ['--', ...base]),
    await tar('libs', ['--no-recursion', 'usr', 'usr/lib', '--recursion', '--', LIBDIR]),
    await tar('usr', ['--exclude=usr/lib/python3*', '--exclude=usr/bin/python3*', `--exclude=${LIBDIR}`, '--', 'usr']),
    await tar('python', ['--no-recursion', 'usr', 'usr/lib', 'usr/bin', '--recursion', '--', ...python]),
  ];
}

/**
 * A layer tar with one `mib` MiB file at WEIGHTS_PATH: an AES-128-CTR keystream under a fixed key,
 * so it is incompressible (gzip keeps it at ~100 %) yet the same bytes on every build.
 */
async function weightsLayerTar(work: string, mib: number): Promise<string> {
  const stage = join(work, 'weights-stage');
  mkdirSync(join(stage, 'models'), { recursive: true });
  const file = join(stage, WEIGHTS_PATH.slice(1));
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 0x5a), Buffer.alloc(16, 0));
  const out = createWriteStream(file);
  const zeros = Buffer.alloc(1 << 20);
  for (let i = 0; i < mib; i++) {
    if (!out.write(cipher.update(zeros))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  out.end(cipher.final());
  await finished(out);
  const tar = join(work, 'weights.tar');
  await runCommand('tar', [...TAR_FLAGS, `--mtime=${LAYER_MTIME}`, '--owner=0', '--group=0', '-C', stage, '-cf', tar, '--', 'models'], { timeoutMs: 900_000 });
  rmSync(stage, { recursive: true, force: true });
  return tar;
}

/** Build (or reuse) the ML image with a `weightsMib` MiB weights layer; `progress` gets one line per step. */
export async function buildMlImage(weightsMib: number, progress: (line: string) => void): Promise<BuiltImage> {
  const name = `${ML_IMAGE_NAME}-w${weightsMib}`;
  const layoutDir = join(benchImageCache(), `ml-${mlRecipeHash()}-w${weightsMib}`);
  const infoPath = join(layoutDir, 'image-info.json');
  if (existsSync(infoPath)) {
    progress(`reusing cached image ${layoutDir}`);
    return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name, layoutDir };
  }
  const base = await buildDebianLayers(progress);
  const work = `${layoutDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  const blobs = join(work, 'layout', 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  try {
    for (const l of base.layers) linkSync(join(base.dir, 'blobs', l.digest.slice(7)), join(blobs, l.digest.slice(7)));
    progress(`writing the ${weightsMib} MiB weights layer`);
    const tar = await weightsLayerTar(work, weightsMib);
    const weights = await gzipLayer(tar, blobs);
    rmSync(tar);
    const info = writeImageManifest(join(work, 'layout'), 'latest', [...base.layers, weights], { cmd: ['/usr/bin/python3'] });
    writeFileSync(join(work, 'layout', 'image-info.json'), JSON.stringify(info, null, 2));
    renameSync(join(work, 'layout'), layoutDir);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name, layoutDir };
}
