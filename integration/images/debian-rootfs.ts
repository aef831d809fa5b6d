/**
 * What the Debian-built images (debian-image.ts, ml-image.ts) share: the mirror debootstrap uses,
 * the tar flags of their layers, and the pieces every split of a debootstrapped rootfs starts from.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../harness/run-command.js';

const FALLBACK_MIRROR = 'http://deb.debian.org/debian';
/** GNU tar flags of every layer packed from a rootfs: xattrs kept, numeric owners, stable order. */
export const ROOTFS_TAR_FLAGS = ['--format=pax', '--xattrs', '--xattrs-include=*', '--numeric-owner', '--sort=name'];

/** The Debian mirror apt is configured with (deb822 `URIs:` or one-line `deb URL bookworm`). */
export function debianMirror(): string {
  const files = ['/etc/apt/sources.list', ...safeList('/etc/apt/sources.list.d').map((f) => join('/etc/apt/sources.list.d', f))];
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    const uri = /^URIs:\s*(\S+\/debian)\/?\s*$/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\/?\s+bookworm\b/m.exec(text)?.[1];
    if (uri) return uri;
  }
  return FALLBACK_MIRROR;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The parts of a debootstrapped rootfs that the images' layer splits name. */
export interface RootfsTars {
  /** Top-level entries other than usr/, sorted: the base layer. */
  readonly base: string[];
  /** usr/lib/python3* and usr/bin/python3*, sorted: the Python layer. */
  readonly python: string[];
  /** Pack `args` (tar arguments, paths relative to the rootfs) into `work/NAME.tar`; returns its path. */
  tar(name: string, args: string[]): Promise<string>;
}

/** The base and Python entry lists of `rootfs`, and a packer writing layer tars into `work`. */
export function rootfsTars(rootfs: string, work: string, timeoutMs: number): RootfsTars {
  const base = readdirSync(rootfs).filter((n) => n !== 'usr').sort();
  const python = [
    ...readdirSync(join(rootfs, 'usr/lib')).filter((n) => n.startsWith('python3')).map((n) => `usr/lib/${n}`),
    ...readdirSync(join(rootfs, 'usr/bin')).filter((n) => n.startsWith('python3')).map((n) => `usr/bin/${n}`),
  ].sort();
  const tar = async (name: string, args: string[]): Promise<string> => {
    const out = join(work, `${name}.tar`);
    await runCommand('tar', [...ROOTFS_TAR_FLAGS, '-C', rootfs, '-cf', out, ...args], { timeoutMs });
    return out;
  };
  return { base, python, tar };
}
