/**
 * Where the Go-module-built components live (containerd 2.x, ctr, the runc shim, crictl).
 * Versions come from integration/go-modules.env — the one place they are pinned —
 * and integration/scripts/build-go-modules.sh builds them once per machine into CLIP_GO_CACHE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './snapshotter.js';

export const CONTAINERD2_MODULE = 'github.com/containerd/containerd/v2';

export interface GoModulePins {
  /** containerd 2.x versions in the matrix, newest first as listed (e.g. `v2.4.2`). */
  containerd2Versions: string[];
  criToolsVersion: string;
  /** stargz-snapshotter release of the bench's lazy-pull peer (`v0.19.1`). */
  stargzVersion: string;
  /** soci-snapshotter release of the ML bench's other lazy-pull peer (`v0.16.1`). */
  sociVersion: string;
}

/** Parse integration/go-modules.env (`KEY=value` lines, `#` comments). */
export function goModulePins(path = join(REPO_ROOT, 'integration', 'go-modules.env')): GoModulePins {
  const kv = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
    if (m) kv.set(m[1]!, m[2]!.trim());
  }
  const get = (k: string): string => {
    const v = kv.get(k);
    if (!v) throw new Error(`${k} missing in ${path}`);
    return v;
  };
  return {
    containerd2Versions: get('CONTAINERD2_VERSIONS').split(/\s+/).filter(Boolean),
    criToolsVersion: get('CRI_TOOLS_VERSION'),
    stargzVersion: get('STARGZ_VERSION'),
    sociVersion: get('SOCI_VERSION'),
  };
}

/** The per-machine cache build-go-modules.sh fills. */
export function goModuleCache(): string {
  return process.env.CLIP_GO_CACHE || '/var/cache/clip-snapshotter/go';
}

/** Directory holding `containerd`, `ctr` and `containerd-shim-runc-v2` of containerd `version`. */
export function containerd2BinDir(version: string): string {
  return join(goModuleCache(), `${CONTAINERD2_MODULE}@${version}`, 'bin');
}

/** crictl at the pinned cri-tools version. */
export function crictlPath(): string {
  return join(goModuleCache(), `sigs.k8s.io/cri-tools@${goModulePins().criToolsVersion}`, 'bin', 'crictl');
}

/** Throws naming the missing program and how to build it. */
export function requireGoModuleBinary(path: string): string {
  if (!existsSync(path)) throw new Error(`${path} is missing: build it with 'make go-tools' (integration/scripts/build-go-modules.sh)`);
  return path;
}
