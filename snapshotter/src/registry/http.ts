/** The shapes of one HTTP exchange with a registry, shared by the transport and everything that reads its responses. */
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';

/** A response body: the response stream, and `dump()` to drain what nobody wants (keeping the connection). */
export type ResponseBody = IncomingMessage & { dump(): Promise<void> };

/** TLS and address settings shared by all requests to one registry endpoint. */
export interface Endpoint {
  scheme: 'http' | 'https';
  host: string;
  skipVerify: boolean;
  caPem: string[];
  /** mTLS client certificates and keys, PEM, in preference order (the first the server accepts is presented). */
  clientCerts?: Array<{ certPem: string; keyPem: string }>;
}

export interface HttpRequest {
  url: URL;
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  endpoint: Endpoint;
  headers?: Record<string, string>;
  /** A Buffer, or a factory so that a streamed body can be replayed on retry. */
  body?: Buffer | (() => Readable);
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
  /** The URL that answered, after redirects. */
  url: URL;
}
