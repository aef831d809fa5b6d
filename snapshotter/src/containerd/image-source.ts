/**
 * Where `pull` gets manifests and blobs. A small interface so the registry client in
 * `registry/` can replace the minimal HTTP implementation below without touching the puller.
 */
import { createHash } from 'node:crypto';
import { dataCorrupt, notFound, unavailable } from '../errors/index.js';
import { MANIFEST_MEDIA_TYPES } from '../registry/media-types.js';
import { apiHostOf, isLoopbackHost } from '../registry/reference.js';

/** A manifest or index as fetched, with its verified digest. */
export interface FetchedManifestBytes {
  digest: string;
  mediaType: string;
  bytes: Buffer;
}

export interface ImageSource {
  /** The domain (as in the reference) and repository, for distribution-source labels. */
  readonly host: string;
  readonly repository: string;
  /** A manifest or index by tag or digest. */
  getManifest(reference: string): Promise<FetchedManifestBytes>;
  /** A small blob (config) into memory, verified against its digest. */
  getBlob(digest: string): Promise<Buffer>;
  /** A blob's bytes from `offset` on, streamed (verification is the consumer's job). */
  openBlob(digest: string, offset: number): AsyncIterable<Uint8Array>;
}

export interface HttpImageSourceOptions {
  domain: string;
  repository: string;
  /** Use http://; the default for loopback registries. */
  plainHttp?: boolean;
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Anonymous distribution-API access over HTTP(S), with anonymous bearer tokens. */
export class HttpImageSource implements ImageSource {
  readonly host: string;
  readonly repository: string;
  readonly #base: string;
  #token: string | undefined;

  constructor(opts: HttpImageSourceOptions) {
    this.host = opts.domain;
    this.repository = opts.repository;
    const scheme = opts.plainHttp || isLoopbackHost(opts.domain) ? 'http' : 'https';
    this.#base = `${scheme}://${apiHostOf(opts.domain)}/v2/${opts.repository}`;
  }

  async #get(path: string, headers: Record<string, string> = {}): Promise<Response> {
    const what = `${this.host}/${this.repository} ${path}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const h = { ...headers, ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) };
      let res: Response;
      try {
        res = await fetch(`${this.#base}/${path}`, { headers: h, redirect: 'follow' });
      } catch (err) {
        throw unavailable('CLIP_PULL_REGISTRY_UNREACHABLE', `registry ${what}`, err);
      }
      if (res.status === 401 && attempt === 0 && (await this.#authenticate(res))) continue;
      if (res.status === 404) throw notFound('CLIP_PULL_NOT_FOUND', `registry ${what}`);
      if (!res.ok) throw unavailable('CLIP_PULL_REGISTRY_STATUS', `registry ${what}: HTTP ${res.status}`);
      return res;
    }
    throw unavailable('CLIP_PULL_REGISTRY_AUTH', `registry ${what}: unauthorized`);
  }

  async #authenticate(res: Response): Promise<boolean> {
    await res.body?.cancel();
    const challenge = res.headers.get('www-authenticate') ?? '';
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!/^bearer/i.test(challenge) || !params.realm) return false;
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const tok = await fetch(url);
    if (!tok.ok) return false;
    const body = (await tok.json()) as { token?: string; access_token?: string };
    this.#token = body.token ?? body.access_token;
    return this.#token !== undefined;
  }

  async getManifest(reference: string): Promise<FetchedManifestBytes> {
    const res = await this.#get(`manifests/${reference}`, { accept: MANIFEST_MEDIA_TYPES.join(', ') });
    const bytes = Buffer.from(await res.arrayBuffer());
    const digest = sha256(bytes);
    if (reference.includes(':') && digest !== reference) {
      throw dataCorrupt('CLIP_PULL_DIGEST_MISMATCH', `manifest ${reference} hashes to ${digest}`);
    }
    let mediaType = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
    if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
      mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
    }
    return { digest, mediaType, bytes };
  }

  async getBlob(digest: string): Promise<Buffer> {
    const bytes = Buffer.from(await (await this.#get(`blobs/${digest}`)).arrayBuffer());
    if (sha256(bytes) !== digest) throw dataCorrupt('CLIP_PULL_DIGEST_MISMATCH', `blob ${digest} hashes to ${sha256(bytes)}`);
    return bytes;
  }

  async *openBlob(digest: string, offset: number): AsyncIterable<Uint8Array> {
    const res = await this.#get(`blobs/${digest}`, offset > 0 ? { range: `bytes=${offset}-` } : {});
    if (offset > 0 && res.status !== 206) throw unavailable('CLIP_PULL_REGISTRY_STATUS', `blob ${digest}: registry ignored the range request`);
    if (!res.body) return;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) yield chunk;
  }
}
