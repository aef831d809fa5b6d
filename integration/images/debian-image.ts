/**
 * A realistic image: debootstrap Debian bookworm minbase + python3, packed as three layers
 * (base without /usr, /usr without Python, Python). Cached under .work/images by ISO week, so
 * reruns in the same week reuse it; a build takes about a minute.
 */
import { existsSync, readFileSync, renameSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IMAGE_CACHE_DIR, type BuiltImage } from './build-images.js';
import { debianMirror, rootfsTars } from './debian-rootfs.js';
import { writeOciLayout, type ImageInfo } from './oci-layout.js';
import { unmountAllUnder } from '../harness/mounts.js';
import { runCommand } from '../harness/run-command.js';

export const DEBIAN_IMAGE_NAME = 'debian-python';

/** `2025w21`: the cache key, so the image follows the Debian archive weekly. */
export function isoWeek(d = new Date()): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return `${t.getUTCFullYear()}w${String(week).padStart(2, '0')}`;
}

/** Build (or reuse this week's) image layout; `progress` gets one line per step. */
export async function buildDebianImage(progress: (line: string) => void, cacheDir = IMAGE_CACHE_DIR): Promise<BuiltImage> {
  const layoutDir = join(cacheDir, `${DEBIAN_IMAGE_NAME}-${isoWeek()}`);
  const infoPath = join(layoutDir, 'image-info.json');
  if (existsSync(infoPath)) {
    progress(`reusing cached image ${layoutDir}`);
    return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name: DEBIAN_IMAGE_NAME, layoutDir };
  }
  const work = `${layoutDir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const rootfs = join(work, 'rootfs');
  try {
    const mirror = debianMirror();
    progress(`debootstrap --variant=minbase --include=python3 bookworm (mirror ${mirror}; about a minute, cached afterwards)`);
    await runCommand('debootstrap', ['--variant=minbase', '--include=python3', 'bookworm', rootfs, mirror], { timeoutMs: 900_000 });
    progress('packing three layers: base, /usr, python');
    const tars = await packThreeLayers(rootfs, work);
    rmSync(rootfs, { recursive: true, force: true });
    progress('writing the OCI layout (gzip)');
    const info = writeOciLayout(join(work, 'layout'), 'latest', tars, { cmd: ['/usr/bin/python3'] });
    writeFileSync(join(work, 'layout', 'image-info.json'), JSON.stringify(info, null, 2));
    renameSync(join(work, 'layout'), layoutDir);
  } finally {
    // An interrupted debootstrap can leave /proc or /sys mounted inside the target.
    await unmountAllUnder(work);
    rmSync(work, { recursive: true, force: true });
  }
  return { ...(JSON.parse(readFileSync(infoPath, 'utf8')) as ImageInfo), name: DEBIAN_IMAGE_NAME, layoutDir };
}

async function packThreeLayers(rootfs: string, work: string): Promise<string[]> {
  const { base, python, tar } = rootfsTars(rootfs, work, 600_000);
  return [
    await tar('base', ['--', ...base]),
    await tar('usr', ['--exclude=usr/lib/python3*', '--exclude=usr/bin/python3*', '--', 'usr']),
    // Parent directories as entries of their own, so the layer is complete without the one below.
    await tar('python', ['--no-recursion', 'usr', 'usr/lib', 'usr/bin', '--recursion', '--', ...python]),
  ];
}
