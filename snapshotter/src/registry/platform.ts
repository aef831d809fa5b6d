import { invalidArgument } from '../errors/index.js';
import type { Descriptor, Platform } from './media-types.js';

/** The platform chosen when none is configured. */
export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };
const DEFAULT_VARIANTS: Record<string, string> = { arm64: 'v8', amd64: 'v1' };

/** Parse `os/arch[/variant]` (as `ctr --platform` takes it). */
export function parsePlatform(spec: string): Platform {
  const parts = spec.trim().toLowerCase().split('/');
  const [os, arch, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !arch || (parts.length === 3 && !variant)) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_REFERENCE', `platform "${spec}" (want os/arch[/variant])`);
  }
  return normalizePlatform({ os, architecture: arch, ...(variant ? { variant } : {}) });
}

/** Canonical architecture names and default variants, so `aarch64` matches `arm64/v8`. */
export function normalizePlatform(p: Platform): Platform {
  const architecture = ARCH_ALIASES[p.architecture] ?? p.architecture;
  const variant = p.variant ?? DEFAULT_VARIANTS[architecture];
  return { os: p.os, architecture, ...(variant !== undefined ? { variant } : {}) };
}

/** True when a manifest for `have` runs on `want`; a wanted platform without variant takes any. */
export function platformMatches(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return false;
  return want.variant === undefined || w.variant === h.variant;
}

/** Pick the manifest for a platform from an index's entries; the first exact match wins. */
export function selectPlatformManifest(manifests: readonly Descriptor[], want: Platform): Descriptor | undefined {
  const candidates = manifests.filter((d) => d.platform !== undefined && platformMatches(want, d.platform));
  const wantVariant = normalizePlatform(want).variant;
  return candidates.find((d) => d.platform && normalizePlatform(d.platform).variant === wantVariant) ?? candidates[0];
}

/** `linux/amd64` style rendering for messages. */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant !== undefined ? `/${p.variant}` : ''}`;
}
