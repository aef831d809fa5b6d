/**
 * Which of a registry host's client certificates to present. hosts.toml `client` may list several
 * pairs; containerd hands them all to Go's TLS, which presents the first one the server's
 * certificate request accepts. Node's TLS presents exactly the one it is given and offers no hook
 * into that request, so for a host with several pairs each is tried in a bare handshake (plus one
 * HTTP request line, since TLS 1.3 servers refuse a certificate only after the client's side of
 * the handshake is done) in hosts.toml order, and the first the server accepts is used for that
 * host from then on. One pair needs no probe. No certificate or key material is logged.
 */
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import type { Logger } from '../log/index.js';
import type { Endpoint } from './http.js';

export type ClientCertificate = NonNullable<Endpoint['clientCerts']>[number];

/** What a probe handshake with one certificate found. */
export type ProbeResult = 'accepted' | 'refused' | 'unknown';

/** A probe with one pair: `refused` when the server alerted or dropped the connection before any HTTP answer. */
export type CertificateProbe = (ep: Endpoint, cert: ClientCertificate, timeoutMs: number) => Promise<ProbeResult>;

/** Chooses, once per endpoint, the client certificate to present. */
export class ClientCertificateChooser {
  #chosen = new Map<string, Promise<number>>();
  #probe: CertificateProbe;
  #timeoutMs: number;
  #log: Logger;

  constructor(opts: { timeoutMs: number; logger: Logger; probe?: CertificateProbe }) {
    this.#timeoutMs = opts.timeoutMs;
    this.#log = opts.logger;
    this.#probe = opts.probe ?? probeClientCertificate;
  }

  /** The certificate to present to `ep` (undefined when it has none). */
  async choose(ep: Endpoint, key: string): Promise<ClientCertificate | undefined> {
    const certs = ep.clientCerts ?? [];
    if (certs.length <= 1) return certs[0];
    let chosen = this.#chosen.get(key);
    if (!chosen) {
      chosen = this.#pick(ep, certs);
      this.#chosen.set(key, chosen);
    }
    return certs[await chosen];
  }

  /** Forget the choice for `key` (its connection failed): the next request probes again. */
  forget(key: string): void {
    this.#chosen.delete(key);
  }

  async #pick(ep: Endpoint, certs: ClientCertificate[]): Promise<number> {
    for (let i = 0; i < certs.length; i++) {
      const result = await this.#probe(ep, certs[i]!, this.#timeoutMs);
      this.#log.debug({ source: 'registry', host: ep.host, client_certificate: i + 1, client_certificates: certs.length, result }, 'registry client certificate probed');
      // Not reachable, or refused for another reason than the certificate: the request itself
      // will report that, with the first pair, as containerd's would.
      if (result === 'unknown') return 0;
      if (result === 'accepted') return i;
    }
    return 0;
  }
}

const DEFAULT_HTTPS_PORT = 443;

/** One TLS handshake with `cert`, then `HEAD / HTTP/1.1`: any HTTP answer means the server accepted it. */
export function probeClientCertificate(ep: Endpoint, cert: ClientCertificate, timeoutMs: number): Promise<ProbeResult> {
  const url = new URL(`https://${ep.host}`);
  const hostname = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? DEFAULT_HTTPS_PORT : Number(url.port);
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const socket = connect({
      host: hostname,
      port,
      ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
      rejectUnauthorized: !ep.skipVerify,
      ...(ep.caPem.length > 0 ? { ca: ep.caPem } : {}),
      cert: cert.certPem,
      key: cert.keyPem,
      ALPNProtocols: ['http/1.1'],
    });
    const timer = setTimeout(() => done('unknown'), timeoutMs);
    // A server that refuses the certificate sends an alert (Go's TLS), or just drops the
    // connection mid-handshake (OpenSSL servers checking after the handshake, TLS 1.2); our own
    // refusal of the server (an untrusted CA, a wrong name) and a port that does not answer are
    // no verdict on the certificate.
    let connected = false;
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('secureConnect', () => socket.write(`HEAD / HTTP/1.1\r\nHost: ${ep.host}\r\nConnection: close\r\n\r\n`));
    socket.once('data', () => done('accepted'));
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      done(/^ERR_SSL_.*ALERT/.test(code) || (connected && (code === 'ECONNRESET' || code === 'EPIPE')) ? 'refused' : 'unknown');
    });
    socket.once('close', () => done(connected ? 'refused' : 'unknown'));
  });
}
