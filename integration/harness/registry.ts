/**
 * A private docker-registry (distribution 2.8.2) on a loopback port with filesystem storage;
 * optionally basic auth (htpasswd) or bearer tokens from a token service (token-server.ts), TLS,
 * and TLS that requires a client certificate.
 */
import { mkdirSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { freePort } from './free-port.js';
import { ManagedProcess } from './managed-process.js';
import { runCommand } from './run-command.js';
import { waitUntil, WaitAborted } from './wait.js';

export interface RegistryOptions {
  /** Directory that holds this registry's config, storage and log. */
  dir: string;
  /** Require basic auth with these credentials. */
  htpasswd?: { username: string; password: string };
  /** Require bearer tokens from this token service (`auth: token`; see token-server.ts). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Listen here instead of 127.0.0.1 and a free port (e.g. an address inside a network namespace). */
  listen?: { host: string; port: number };
  /** Run docker-registry under this command (e.g. `['ip', 'netns', 'exec', NS]`, which execs it). */
  commandPrefix?: string[];
  /** Serve HTTPS with this certificate and key (PEM files); `clientCa` also requires client certificates it signed. */
  tls?: RegistryTls;
  /** Serve this storage directory (default `dir/storage`), e.g. another registry's, to serve its images. */
  storageDir?: string;
}

export interface RegistryTls {
  certPath: string;
  keyPath: string;
  /** The CA that signed `certPath`: the readiness probe trusts it. */
  caPath: string;
  /** Require a client certificate signed by this CA (`http.tls.clientcas`). */
  clientCaPath?: string;
  /** A client certificate and key the readiness probe presents when `clientCaPath` is set. */
  probeClient?: { certPath: string; keyPath: string };
}

/** A running registry: its address, its access log, and a restart on the same port (for outage tests). */
export interface Registry {
  /** `127.0.0.1:PORT`, the prefix of image references. */
  host: string;
  port: number;
  /** Same as `host`. */
  hostPort: string;
  url: string;
  /** The registry's stderr/stdout, access log included. */
  logPath: string;
  storageDir: string;
  /** Access-log lines mentioning `needle` (e.g. a blob digest). */
  accessLogLines(needle?: string): string[];
  stop(): Promise<void>;
  restart(): Promise<void>;
  /** Start again (same port, same storage) after `stop()`. */
  start(): Promise<void>;
}

function configYaml(storageDir: string, host: string, port: number, htpasswdPath?: string, tls?: RegistryTls, token?: RegistryOptions['token']): string {
  const auth = htpasswdPath
    ? `auth:\n  htpasswd:\n    realm: clip-test\n    path: ${htpasswdPath}\n`
    : token
      ? `auth:\n  token:\n    realm: ${token.realm}\n    service: ${token.service}\n    issuer: ${token.issuer}\n    rootcertbundle: ${token.rootCertBundle}\n`
      : '';
  const tlsYaml = tls
    ? `  tls:\n    certificate: ${tls.certPath}\n    key: ${tls.keyPath}\n${tls.clientCaPath ? `    clientcas:\n      - ${tls.clientCaPath}\n` : ''}`
    : '';
  return `version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: ${storageDir}
  delete:
    enabled: true
http:
  addr: ${host}:${port}
  secret: clip-test-secret
${tlsYaml}${auth}`;
}

function probe(url: string, tls?: RegistryTls): Promise<boolean> {
  return new Promise((resolve) => {
    const tlsOpts = tls
      ? { ca: readFileSync(tls.caPath), ...(tls.probeClient ? { cert: readFileSync(tls.probeClient.certPath), key: readFileSync(tls.probeClient.keyPath) } : {}) }
      : undefined;
    const send = tls ? httpsRequest : request;
    const req = send(`${url}/v2/`, { timeout: 1000, ...tlsOpts }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}

/** Start the registry and wait until `/v2/` answers. */
export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const storageDir = opts.storageDir ?? join(opts.dir, 'storage');
  mkdirSync(storageDir, { recursive: true });
  mkdirSync(opts.dir, { recursive: true });
  let htpasswdPath: string | undefined;
  if (opts.htpasswd) {
    htpasswdPath = join(opts.dir, 'htpasswd');
    const res = await runCommand('htpasswd', ['-Bbn', opts.htpasswd.username, opts.htpasswd.password]);
    writeFileSync(htpasswdPath, res.stdout);
  }
  const host = opts.listen?.host ?? '127.0.0.1';
  const port = opts.listen?.port ?? (await freePort());
  const cfgPath = join(opts.dir, 'config.yml');
  writeFileSync(cfgPath, configYaml(storageDir, host, port, htpasswdPath, opts.tls, opts.token));
  const logPath = join(opts.dir, 'registry.log');
  const [command, ...prefixArgs] = [...(opts.commandPrefix ?? []), 'docker-registry'];
  const proc = new ManagedProcess({ command: command!, args: [...prefixArgs, 'serve', cfgPath], logPath });
  const url = `${opts.tls ? 'https' : 'http'}://${host}:${port}`;
  const ready = async (): Promise<void> => {
    await waitUntil(`registry on ${url}`, async () => {
      if (!proc.running) throw new WaitAborted(`docker-registry exited: ${readFileSync(logPath, 'utf8').slice(-1000)}`);
      return probe(url, opts.tls);
    }, 15_000);
  };
  try {
    await ready();
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return {
    host: `${host}:${port}`,
    port,
    hostPort: `${host}:${port}`,
    url,
    logPath,
    storageDir,
    accessLogLines: (needle) => readFileSync(logPath, 'utf8').split('\n').filter((l) => l.includes('"GET ') || l.includes('"HEAD ')).filter((l) => needle === undefined || l.includes(needle)),
    stop: () => proc.stop(),
    restart: async () => {
      await proc.stop();
      proc.respawn();
      await ready();
    },
    start: async () => {
      proc.respawn();
      await ready();
    },
  };
}
