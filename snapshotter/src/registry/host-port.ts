import { readdir } from 'node:fs/promises';

/**
 * containerd records where content came from as `containerd.io/distribution.source.<hostname>`
 * with the port stripped (it uses url.Hostname()). Registries on other ports are declared in the
 * hosts.toml directory as `<host>:<port>/`; when exactly one such entry matches, that is the one.
 */
export async function restorePort(host: string, configPath: string): Promise<string> {
  if (host.includes(':') || configPath === '') return host;
  const entries = await readdir(configPath).catch(() => [] as string[]);
  const matches = entries.filter((e) => e.startsWith(`${host}:`) && /^\d+$/.test(e.slice(host.length + 1)));
  return matches.length === 1 ? matches[0]! : host;
}
