/**
 * Registry host resolution compatible with containerd's `hosts.toml` directory:
 * `<config_path>/<domain>/hosts.toml` (else `<config_path>/_default/hosts.toml`) lists mirrors as
 * `[host."URL"]` tables, tried in file order, then the upstream `server`.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument } from '../errors/index.js';
import { apiHostOf, isLoopbackHost } from './reference.js';

export type HostCapability = 'pull' | 'resolve' | 'push';

/** A TLS client certificate and its private key, PEM. */
export interface ClientCertificate {
  certPem: string;
  keyPem: string;
}

/** One endpoint that can serve a registry domain. */
export interface RegistryHost {
  scheme: 'http' | 'https';
  /** `hostname[:port]` */
  host: string;
  /** API root path, normally `/v2`. */
  path: string;
  capabilities: readonly HostCapability[];
  skipVerify: boolean;
  /** PEM contents of extra CA certificates. */
  caPem: string[];
  /**
   * mTLS: the client certificates (chains) and keys, PEM, in hosts.toml `client` order; never
   * empty when present. The transport presents the first one the server accepts.
   */
  clientCerts?: ClientCertificate[];
  headers: Record<string, string>;
  /** False for the upstream server, true for mirrors (which get `?ns=<domain>`). */
  mirror: boolean;
}

export interface HostsOptions {
  /** containerd's `[registry] config_path`; empty means no hosts directory. */
  configPath?: string;
  /** Use plain HTTP for the default server and scheme-less host entries (`--plain-http`). */
  plainHttp?: boolean;
}

const ALL_CAPABILITIES: readonly HostCapability[] = ['pull', 'resolve', 'push'];
type Table = Record<string, unknown>;

/** The hosts to try for a domain, mirrors first, the upstream server last. */
export async function resolveHosts(domain: string, opts: HostsOptions = {}): Promise<RegistryHost[]> {
  const defaultScheme = opts.plainHttp === true || isLoopbackHost(domain) ? 'http' : 'https';
  const found = opts.configPath ? await readHostsFile(opts.configPath, domain) : undefined;
  if (!found) return [defaultServer(domain, defaultScheme)];
  return parseHostsToml(found.text, found.path, domain, opts.plainHttp === true);
}

function defaultServer(domain: string, scheme: 'http' | 'https'): RegistryHost {
  return { scheme, host: apiHostOf(domain), path: '/v2', capabilities: ALL_CAPABILITIES, skipVerify: false, caPem: [], headers: {}, mirror: false };
}

async function readHostsFile(configPath: string, domain: string): Promise<{ text: string; path: string } | undefined> {
  for (const dir of [domain, '_default']) {
    const path = join(configPath, dir, 'hosts.toml');
    try {
      return { text: await readFile(path, 'utf8'), path };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return undefined;
}

/** Parse one hosts.toml; `path` locates relative CA files and names the file in errors. */
export async function parseHostsToml(text: string, path: string, domain: string, plainHttp = false): Promise<RegistryHost[]> {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `hosts file ${path}: not valid TOML`, err);
  }
  const defaultScheme = plainHttp || isLoopbackHost(domain) ? 'http' : 'https';
  const hosts: RegistryHost[] = [];
  const mirrors = doc.host ?? {};
  if (!isTable(mirrors)) throw configError(path, '"host" must be a table of [host."URL"] entries');
  for (const [url, table] of Object.entries(mirrors)) {
    if (!isTable(table)) throw configError(path, `host "${url}" must be a table`);
    hosts.push(await toHost(url, table, path, plainHttp ? 'http' : 'https', true));
  }
  const server = doc.server === undefined ? `${defaultScheme}://${apiHostOf(domain)}` : doc.server;
  if (typeof server !== 'string') throw configError(path, '"server" must be a string');
  const upstream = await toHost(server, doc, path, defaultScheme, false);
  // A [host."URL"] table naming the server's own URL configures the server (its ca, client, …),
  // as the hosts.toml layout containerd 1.6 requires writes it; it is not a mirror in front of
  // itself, so it is tried once, last, without `?ns=`.
  const same = (h: RegistryHost): boolean => h.scheme === upstream.scheme && h.host === upstream.host && h.path === upstream.path;
  const own = hosts.find(same);
  return own ? [...hosts.filter((h) => !same(h)), { ...own, mirror: false }] : [...hosts, upstream];
}

async function toHost(raw: string, t: Table, path: string, defaultScheme: string, mirror: boolean): Promise<RegistryHost> {
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `${defaultScheme}://${raw}`);
  } catch (err) {
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `hosts file ${path}: host "${raw}" is not a URL`, err);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(path, `host "${raw}" must use http or https`);
  let apiPath = url.pathname.replace(/\/+$/, '');
  if (t.override_path !== true && !apiPath.endsWith('/v2')) apiPath += '/v2';
  return {
    scheme: url.protocol === 'http:' ? 'http' : 'https',
    host: url.host,
    path: apiPath,
    capabilities: capabilitiesOf(t.capabilities, path),
    skipVerify: booleanOf(t.skip_verify, 'skip_verify', path),
    caPem: await readCas(t.ca, path),
    ...(t.client !== undefined ? { clientCerts: await readClientCerts(t.client, path) } : {}),
    headers: headersOf(t.header, path),
    mirror,
  };
}

function capabilitiesOf(value: unknown, path: string): readonly HostCapability[] {
  if (value === undefined) return ALL_CAPABILITIES;
  if (!Array.isArray(value) || !value.every((c) => ALL_CAPABILITIES.includes(c as HostCapability))) {
    throw configError(path, '"capabilities" must be a list of "pull", "resolve", "push"');
  }
  return value as HostCapability[];
}

function booleanOf(value: unknown, key: string, path: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw configError(path, `"${key}" must be a boolean`);
  return value;
}

async function readCas(value: unknown, path: string): Promise<string[]> {
  if (value === undefined) return [];
  const files = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string')) throw configError(path, '"ca" must be a path or a list of paths');
  return Promise.all(
    (files as string[]).map(async (f) => {
      const file = isAbsolute(f) ? f : join(dirname(path), f);
      try {
        return await readFile(file, 'utf8');
      } catch (err) {
        throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `hosts file ${path}: cannot read CA ${file}`, err);
      }
    }),
  );
}

/**
 * hosts.toml `client`, as containerd takes it: `"both.pem"` (certificate and key in one file), a
 * list of such files, or `[["cert", "key"], …]` pairs (an empty key means "in the cert file"), mixed
 * freely. Every pair is read and checked; like containerd (Go's TLS picks the first certificate
 * the server's request accepts), the transport presents the first pair the server accepts.
 */
async function readClientCerts(value: unknown, path: string): Promise<ClientCertificate[]> {
  const pairs: Array<[string, string]> = [];
  if (typeof value === 'string') pairs.push([value, '']);
  else if (Array.isArray(value)) {
    for (const item of value) {
      if (typeof item === 'string') pairs.push([item, '']);
      else if (Array.isArray(item) && item.length === 2 && item.every((x) => typeof x === 'string')) {
        pairs.push([item[0] as string, item[1] as string]);
      } else throw configError(path, '"client" entries must be a path or a ["cert", "key"] pair of paths');
    }
  } else throw configError(path, '"client" must be a path, a list of paths or a list of ["cert", "key"] pairs');
  if (pairs.length === 0) throw configError(path, '"client" names no certificate');
  return Promise.all(pairs.map(async ([cert, key]) => {
    if (cert === '') throw configError(path, '"client" names an empty certificate path');
    const certPem = await readPem(cert, path, 'client certificate');
    const keyPem = key === '' ? certPem : await readPem(key, path, 'client key');
    if (!/-----BEGIN CERTIFICATE-----/.test(certPem)) throw configError(path, `client certificate ${cert} holds no PEM certificate`);
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(keyPem)) throw configError(path, `client key ${key || cert} holds no PEM private key`);
    return { certPem, keyPem };
  }));
}

async function readPem(f: string, path: string, what: string): Promise<string> {
  const file = isAbsolute(f) ? f : join(dirname(path), f);
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    // The message names the file, never its contents (a key).
    throw invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `hosts file ${path}: cannot read ${what} ${file}`, err);
  }
}

function headersOf(value: unknown, path: string): Record<string, string> {
  if (value === undefined) return {};
  if (!isTable(value)) throw configError(path, '"header" must be a table');
  const out: Record<string, string> = {};
  for (const [name, v] of Object.entries(value)) {
    if (typeof v === 'string') out[name.toLowerCase()] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[name.toLowerCase()] = v.join(', ');
    else throw configError(path, `header "${name}" must be a string or a list of strings`);
  }
  return out;
}

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function configError(path: string, why: string) {
  return invalidArgument('CLIP_REGISTRY_INVALID_CONFIG', `hosts file ${path}: ${why}`);
}
