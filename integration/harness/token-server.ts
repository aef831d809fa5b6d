/**
 * A small OAuth2-style token service for docker-registry's `auth: token` (distribution's JWT
 * scheme): it checks Basic credentials and issues ES256 JWTs signed with a key it generates (its
 * self-signed certificate is the registry's `rootcertbundle`, sent in each token's `x5c`), valid
 * for `expiresInS` seconds. distribution accepts a token for 60 s past its `exp` (clock-skew
 * leeway), so `exp` is set that much earlier: the registry refuses a token exactly `expiresInS`
 * after it was issued. It records every token it issued, for tests that wait until all expired.
 */
import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCommand } from './run-command.js';

/** distribution's token.Leeway. */
const REGISTRY_LEEWAY_S = 60;

export interface TokenServerOptions {
  /** Directory for the key and certificate. */
  dir: string;
  username: string;
  password: string;
  /** Lifetime of each token (`expires_in`). */
  expiresInS: number;
  service?: string;
  issuer?: string;
}

/** One token as issued. */
export interface IssuedToken {
  token: string;
  issuedAtMs: number;
  expiresAtMs: number;
  scopes: string[];
}

export interface TokenServer {
  /** `http://127.0.0.1:PORT/token`: the registry's `realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM file of the signing certificate: the registry's `rootcertbundle`. */
  certPath: string;
  /** Every token issued so far, oldest first. */
  issued(): IssuedToken[];
  /** Token requests refused (bad or missing credentials). */
  refused(): number;
  close(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** Start the token service on a loopback port. */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const keyPath = join(opts.dir, 'token-key.pem');
  const certPath = join(opts.dir, 'token-cert.pem');
  await runCommand('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyPath]);
  await runCommand('openssl', ['req', '-x509', '-new', '-key', keyPath, '-subj', '/CN=clip-test-token-issuer', '-days', '2', '-out', certPath]);
  const key = createPrivateKey(readFileSync(keyPath));
  const certDer = Buffer.from(readFileSync(certPath, 'utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const service = opts.service ?? 'clip-test-registry';
  const issuer = opts.issuer ?? 'clip-test-token-issuer';
  const issued: IssuedToken[] = [];
  let refused = 0;
  const expected = `Basic ${Buffer.from(`${opts.username}:${opts.password}`).toString('base64')}`;

  const jwt = (scopes: string[], nowMs: number): string => {
    const nowS = Math.floor(nowMs / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c: [certDer.toString('base64')] };
    const access = scopes.flatMap((s) => {
      const m = /^(repository):(.+):([^:]+)$/.exec(s);
      return m ? [{ type: m[1], name: m[2], actions: m[3]!.split(',') }] : [];
    });
    const claims = {
      iss: issuer, sub: opts.username, aud: service,
      exp: nowS + opts.expiresInS - REGISTRY_LEEWAY_S, nbf: nowS - 1, iat: nowS,
      jti: randomBytes(8).toString('hex'), access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${b64url(sig)}`;
  };

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== '/token' || req.headers.authorization !== expected) {
      refused++;
      res.writeHead(401, { 'www-authenticate': 'Basic realm="clip-test-token"' }).end();
      return;
    }
    const scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
    const nowMs = Date.now();
    const token = jwt(scopes, nowMs);
    // Whole seconds, like the JWT: the registry stops accepting it at the second it ends.
    const expiresAtMs = (Math.floor(nowMs / 1000) + opts.expiresInS) * 1000;
    issued.push({ token, issuedAtMs: nowMs, expiresAtMs, scopes });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, access_token: token, expires_in: opts.expiresInS, issued_at: new Date(nowMs).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  writeFileSync(join(opts.dir, 'token-server.port'), String(port));
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certPath,
    issued: () => [...issued],
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
