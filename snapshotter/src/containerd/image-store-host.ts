/**
 * A registry's `host:port` from containerd's image store. containerd labels content with
 * `containerd.io/distribution.source.<hostname>` — the port stripped (url.Hostname()) — but image
 * records keep the name the user pulled (`127.0.0.1:5000/team/app:1.0`). For a snapshot.ref-only
 * Prepare (nerdctl, the Go client, the transfer service without annotations) this recovers the port
 * without a hosts.toml, once the node holds any image of that registry. During the very first pull
 * from a registry there is no record yet: containerd creates it after unpacking.
 */
import type { ImageRecord } from './types.js';

/** `host[:port]/repository[:tag][@digest]` split; undefined for names without a host part. */
export function splitImageName(name: string): { host: string; port: string; repository: string } | undefined {
  const slash = name.indexOf('/');
  if (slash <= 0) return undefined;
  const locator = name.slice(0, slash);
  let rest = name.slice(slash + 1);
  const at = rest.indexOf('@');
  if (at >= 0) rest = rest.slice(0, at);
  const colon = rest.lastIndexOf(':');
  if (colon >= 0) rest = rest.slice(0, colon);
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(locator);
  if (!m || rest === '') return undefined;
  return { host: m[1]!, port: m[2] ?? '', repository: rest };
}

/**
 * The `host:port` (or bare `host`) under which the image store knows `host`, judged in order:
 * an image of the same repository whose target is `manifestDigest`; the one port all images of
 * the same repository use; the one port all images on that host use. Undefined when the store is
 * silent or ambiguous (two ports and nothing to tell them apart).
 */
export function hostFromImages(images: readonly ImageRecord[], host: string, repository: string, manifestDigest: string): string | undefined {
  const onHost = images.map((i) => ({ i, n: splitImageName(i.name) })).filter((x) => x.n?.host === host);
  const join = (port: string): string => (port === '' ? host : `${host}:${port}`);
  const sameRepo = onHost.filter((x) => x.n!.repository === repository);
  const exact = sameRepo.filter((x) => x.i.target.digest === manifestDigest);
  const unique = (xs: typeof onHost): string | undefined => {
    const ports = new Set(xs.map((x) => x.n!.port));
    return ports.size === 1 ? join([...ports][0]!) : undefined;
  };
  return unique(exact) ?? unique(sameRepo) ?? unique(onHost);
}
