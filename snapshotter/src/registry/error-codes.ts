/** Stable error codes raised by the registry client; callers branch on these. */
export const REGISTRY_ERROR_CODES = {
  /** The image reference or repository name does not parse. */
  invalidReference: 'CLIP_REGISTRY_INVALID_REFERENCE',
  /** A digest string is malformed or uses an unsupported algorithm. */
  invalidDigest: 'CLIP_REGISTRY_INVALID_DIGEST',
  /** A hosts.toml file or docker config.json is malformed. */
  invalidConfig: 'CLIP_REGISTRY_INVALID_CONFIG',
  /** The manifest, blob, tag or repository does not exist. */
  notFound: 'CLIP_REGISTRY_NOT_FOUND',
  /** The registry (or its token server) refused our credentials or has none for us. */
  unauthorized: 'CLIP_REGISTRY_UNAUTHORIZED',
  /** Authenticated, but not allowed. */
  denied: 'CLIP_REGISTRY_DENIED',
  /** Down, 5xx or 429 after the bounded retries, timed out, or connection failures. */
  unavailable: 'CLIP_REGISTRY_UNAVAILABLE',
  /** Content does not hash to the digest it was fetched or pushed by. */
  digestMismatch: 'CLIP_REGISTRY_DIGEST_MISMATCH',
  /** A Range request was ignored or answered with the wrong Content-Range. */
  rangeUnsupported: 'CLIP_REGISTRY_RANGE_UNSUPPORTED',
  /** A response body is longer than what was asked for (a Range) or than allowed (manifests, tokens). */
  bodyTooLong: 'CLIP_REGISTRY_BODY_TOO_LONG',
  /** A manifest is not valid JSON, has an unknown media type or is too large. */
  manifestInvalid: 'CLIP_REGISTRY_MANIFEST_INVALID',
  /** No manifest in an index matches the wanted platform. */
  platformNotFound: 'CLIP_REGISTRY_PLATFORM_NOT_FOUND',
  /** The registry answered with a status this client does not expect. */
  unexpectedStatus: 'CLIP_REGISTRY_UNEXPECTED_STATUS',
  /** The registry rejected what we pushed (400: invalid manifest, blob unknown, ...). */
  rejected: 'CLIP_REGISTRY_REJECTED',
} as const;
