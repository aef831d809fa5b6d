/**
 * HTTP for the registry client: one keep-alive Agent per endpoint (TLS: CA, skip_verify, client
 * certificate), connect, header and idle-body timeouts, bounded retries with exponential backoff on
 * 5xx and connection errors, `Retry-After` on 429, and manual redirects that drop `Authorization`
 * and hosts.toml headers on an origin change. Node's own http/https, not undici: undici costs a
 * process ~20 MB of resident memory (its modules and its WebAssembly HTTP parser), and the FUSE
 * server, which talks to registries, has a memory budget (README "Memory").
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { sharedSilentLogger, type Logger } from '../log/index.js';
import { ClientCertificateChooser, type CertificateProbe, type ClientCertificate } from './client-certificates.js';
import type { Endpoint, HttpRequest, HttpResponse, ResponseBody } from './http.js';
import { unavailable } from './registry-errors.js';

export interface TransportOptions {
  connectTimeoutMs?: number;
  /** Waiting for response headers. */
  headersTimeoutMs?: number;
  /** Idle time between two body chunks; a stalled download fails instead of hanging. */
  bodyTimeoutMs?: number;
  /** Retries after the first attempt. */
  maxRetries?: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  /** A 429's Retry-After longer than this is cut to this. */
  maxRetryAfterMs?: number;
  maxRedirects?: number;
  logger?: Logger;
  /** Waits between retries (backoff, Retry-After); tests inject one that records instead of waiting. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** How a host with several client certificates is probed (tests); default: a TLS handshake. */
  probeClientCertificate?: CertificateProbe;
}

// Codes of this transport's own timeouts (`err.code`, and in the messages of the errors they become).
const CONNECT_TIMEOUT = 'CONNECT_TIMEOUT';
const HEADERS_TIMEOUT = 'HEADERS_TIMEOUT';
const BODY_TIMEOUT = 'BODY_TIMEOUT';
/** What `dump()` reads of a body nobody wants before it closes the connection instead. */
const DUMP_MAX_BYTES = 128 * 1024;

/** Request headers a redirect to another origin keeps; everything else (auth, hosts.toml headers) is dropped. */
const CROSS_ORIGIN_HEADERS = new Set(['accept', 'range', 'content-type', 'content-length', 'content-range', 'user-agent']);
const RETRY_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRY_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'ECONNABORTED', CONNECT_TIMEOUT, HEADERS_TIMEOUT,
]);
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);

/** Sends requests with retries, timeouts and safe redirects; owns the connection pools. */
export class Transport {
  #opts: Required<Omit<TransportOptions, 'logger' | 'sleep' | 'probeClientCertificate'>>;
  #logger: Logger;
  #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #agents = new Map<string, HttpAgent>();
  #clientCerts: ClientCertificateChooser;

  constructor(opts: TransportOptions = {}) {
    this.#opts = {
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      headersTimeoutMs: opts.headersTimeoutMs ?? 30_000,
      bodyTimeoutMs: opts.bodyTimeoutMs ?? 30_000,
      maxRetries: opts.maxRetries ?? 4,
      retryBaseDelayMs: opts.retryBaseDelayMs ?? 200,
      retryMaxDelayMs: opts.retryMaxDelayMs ?? 5_000,
      maxRetryAfterMs: opts.maxRetryAfterMs ?? 30_000,
      maxRedirects: opts.maxRedirects ?? 5,
    };
    this.#logger = opts.logger ?? sharedSilentLogger();
    this.#sleep = opts.sleep ?? ((ms, signal) => sleep(ms, undefined, signal ? { signal } : undefined));
    this.#clientCerts = new ClientCertificateChooser({
      timeoutMs: this.#opts.connectTimeoutMs,
      logger: this.#logger,
      ...(opts.probeClientCertificate ? { probe: opts.probeClientCertificate } : {}),
    });
  }

  /**
   * Send with retries. A final 5xx/429 is returned, not thrown, so callers can name what failed;
   * connection errors that outlast the retries throw `unavailable`.
   */
  async send(req: HttpRequest): Promise<HttpResponse> {
    const replayable = req.body === undefined || Buffer.isBuffer(req.body) || typeof req.body === 'function';
    for (let attempt = 0; ; attempt++) {
      const last = attempt >= this.#opts.maxRetries || !replayable;
      let res: HttpResponse;
      try {
        res = await this.#followRedirects(req);
      } catch (err) {
        // The server may have stopped accepting the certificate chosen among several: choose again.
        if ((req.endpoint.clientCerts?.length ?? 0) > 1) this.#clientCerts.forget(endpointKey(req.endpoint));
        if (last || !isRetryable(err, req.signal)) throw toUnavailable(err, req);
        await this.#backoff(attempt, undefined, req, errCode(err));
        continue;
      }
      if (last || !RETRY_STATUS.has(res.status)) return res;
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      await res.body.dump().catch(() => undefined);
      await this.#backoff(attempt, retryAfterMs, req, String(res.status));
    }
  }

  /** Close every pooled connection. */
  async close(): Promise<void> {
    const agents = [...this.#agents.values()];
    this.#agents.clear();
    for (const a of agents) a.destroy();
  }

  async #backoff(attempt: number, retryAfterMs: number | undefined, req: HttpRequest, why: string): Promise<void> {
    const exp = Math.min(this.#opts.retryMaxDelayMs, this.#opts.retryBaseDelayMs * 2 ** attempt);
    const delayMs = retryAfterMs !== undefined ? Math.min(retryAfterMs, this.#opts.maxRetryAfterMs) : exp / 2 + Math.random() * (exp / 2);
    this.#logger.debug({ source: 'registry', host: req.url.host, attempt: attempt + 1, reason: why, delay_ms: Math.round(delayMs) }, 'registry request retry');
    await this.#sleep(delayMs, req.signal);
  }

  async #followRedirects(req: HttpRequest): Promise<HttpResponse> {
    let url = req.url;
    let method: HttpRequest['method'] = req.method;
    let body = req.body;
    const headers: Record<string, string> = { ...req.headers };
    const home = `${req.endpoint.scheme}://${req.endpoint.host}`;
    for (let hop = 0; hop <= this.#opts.maxRedirects; hop++) {
      const dispatcher = url.origin === new URL(home).origin
        ? this.#agentFor(req.endpoint, await this.#clientCerts.choose(req.endpoint, endpointKey(req.endpoint)))
        : this.#agentFor(plainEndpoint(url), undefined);
      const res = await this.#exchange(url, method, headers, typeof body === 'function' ? body() : body, dispatcher, req.signal);
      const location = res.headers.location;
      if (!REDIRECT_STATUS.has(res.status) || typeof location !== 'string') return { ...res, url };
      await res.body.dump().catch(() => undefined);
      const next = new URL(location, url);
      // Blob storage behind a redirect must never see the registry's credentials, nor the custom
      // headers hosts.toml sets for the registry (they may be credentials too): another origin
      // gets only the headers that describe the request itself.
      if (next.origin !== url.origin) {
        for (const name of Object.keys(headers)) if (!CROSS_ORIGIN_HEADERS.has(name.toLowerCase())) delete headers[name];
      }
      if (res.status === 303 && method !== 'HEAD') {
        method = 'GET';
        body = undefined;
      }
      url = next;
    }
    throw unavailable(`registry ${req.url.host}: more than ${this.#opts.maxRedirects} redirects for ${req.url.pathname}`);
  }

  /**
   * One request and its response head. Bounds: connecting (`connectTimeoutMs`), the response head
   * (`headersTimeoutMs`, once the request is sent), and then each pause of the body (`bodyTimeoutMs`, which
   * fails the body stream with BODY_TIMEOUT).
   */
  #exchange(url: URL, method: string, headers: OutgoingHttpHeaders, body: Buffer | Readable | undefined, agent: HttpAgent, signal: AbortSignal | undefined): Promise<Omit<HttpResponse, 'url'>> {
    return new Promise((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, { method, headers, agent, ...(signal ? { signal } : {}) });
      let answered = false;
      let headersTimer: NodeJS.Timeout | undefined;
      const fail = (err: Error): void => {
        clearTimeout(headersTimer);
        if (!answered) reject(err);
        req.destroy(err);
      };
      // Counted once the request is sent, as a server may answer only after a long upload.
      req.once('finish', () => {
        if (!answered) headersTimer = setTimeout(() => fail(codedError(HEADERS_TIMEOUT, `no response head within ${this.#opts.headersTimeoutMs} ms`)), this.#opts.headersTimeoutMs);
      });
      req.on('error', fail);
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting) return;
        const connectTimer = setTimeout(() => fail(codedError(CONNECT_TIMEOUT, `not connected within ${this.#opts.connectTimeoutMs} ms`)), this.#opts.connectTimeoutMs);
        const done = (): void => clearTimeout(connectTimer);
        socket.once('connect', done);
        socket.once('close', done);
      });
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        clearTimeout(headersTimer);
        resolve({ status: res.statusCode ?? 0, headers: distinctHeaders(res), body: responseBody(res, this.#opts.bodyTimeoutMs) });
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        body.on('error', (err: Error) => fail(err));
        body.pipe(req);
      }
    });
  }

  #agentFor(ep: Endpoint, cert: ClientCertificate | undefined): HttpAgent {
    const key = `${endpointKey(ep)}|${cert ? certHash([cert]) : ''}`;
    let agent = this.#agents.get(key);
    if (!agent) {
      // `timeout` closes a pooled connection idle that long (the agent applies it to free sockets).
      agent = ep.scheme === 'https'
        ? new HttpsAgent({
          keepAlive: true,
          timeout: KEEP_ALIVE_MS,
          rejectUnauthorized: !ep.skipVerify,
          ...(ep.caPem.length ? { ca: ep.caPem } : {}),
          ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}),
        })
        : new HttpAgent({ keepAlive: true, timeout: KEEP_ALIVE_MS });
      this.#agents.set(key, agent);
    }
    return agent;
  }
}

const KEEP_ALIVE_MS = 30_000;

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code });
}

/** Header values as strings, or arrays where the response repeated a header (WWW-Authenticate). */
function distinctHeaders(res: IncomingMessage): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, values] of Object.entries(res.headersDistinct)) out[name] = values && values.length === 1 ? values[0] : values;
  return out;
}

/**
 * The response as a body stream: an idle pause longer than `idleMs` fails it with BODY_TIMEOUT, and
 * `dump()` drains what nobody wants (a small rest keeps the connection; more closes it).
 */
function responseBody(res: IncomingMessage, idleMs: number): ResponseBody {
  const socket = res.socket;
  const onIdle = (): void => {
    res.destroy(codedError(BODY_TIMEOUT, `the body paused for more than ${idleMs} ms`));
  };
  socket.setTimeout(idleMs);
  socket.on('timeout', onIdle);
  // The socket goes back to the pool (which sets its own idle timeout) or is closed.
  res.once('close', () => socket.removeListener('timeout', onIdle));
  const body = res as ResponseBody;
  body.dump = () => new Promise<void>((resolve) => {
    if (res.complete || res.destroyed) {
      resolve();
      return;
    }
    let read = 0;
    res.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > DUMP_MAX_BYTES) res.destroy();
    });
    res.once('close', () => resolve());
    res.once('error', () => resolve());
    res.once('end', () => resolve());
    res.resume();
  });
  return body;
}

/** An endpoint's TLS identity: scheme, host, verification, CAs and client certificates (hashed, never the key itself). */
function endpointKey(ep: Endpoint): string {
  const caKey = ep.caPem.length ? createHash('sha256').update(ep.caPem.join('\n')).digest('hex') : '';
  return `${ep.scheme}://${ep.host}|${ep.skipVerify}|${caKey}|${ep.clientCerts ? certHash(ep.clientCerts) : ''}`;
}

function certHash(certs: ClientCertificate[]): string {
  const h = createHash('sha256');
  for (const c of certs) h.update(c.certPem).update('\0').update(c.keyPem).update('\0');
  return h.digest('hex');
}

function plainEndpoint(url: URL): Endpoint {
  return { scheme: url.protocol === 'http:' ? 'http' : 'https', host: url.host, skipVerify: false, caPem: [] };
}

function errCode(err: unknown): string {
  const code = (err as { code?: unknown; cause?: { code?: unknown } })?.code ?? (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === 'string' ? code : 'unknown';
}

function isRetryable(err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted) return false;
  return RETRY_CODES.has(errCode(err));
}

function toUnavailable(err: unknown, req: HttpRequest): Error {
  if (req.signal?.aborted) return err as Error;
  const detail = err instanceof Error ? err.message : String(err);
  return unavailable(`registry ${req.url.host}: ${req.method} ${req.url.pathname}: ${errCode(err)} ${detail}`, err);
}

/** Retry-After as delta-seconds or an HTTP date, in milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined, nowMs = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
