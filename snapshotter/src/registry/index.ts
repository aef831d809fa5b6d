export { Authorizer } from './authorizer.js';
export type { AuthorizerOptions } from './authorizer.js';
export { pushBlob } from './blob-upload.js';
export type { BlobSource, PushBlobOptions } from './blob-upload.js';
export { fetchBlob, fetchBlobBytes, statBlob } from './blobs.js';
export type { BlobStream, ByteRange, FetchBlobOptions } from './blobs.js';
export { ChainedCredentials, CredentialCache, StaticCredentials, normalizeCredentialHost } from './credentials.js';
export type { Credential, CredentialStore } from './credentials.js';
export { DockerConfigCredentials, parseDockerAuths, parseDockerConfig } from './docker-config.js';
export { DockerCredentialHelper } from './credential-helper.js';
export type { CredentialHelperOptions } from './credential-helper.js';
export { KubeletCredentialProviders, imageMatches, loadProviderConfig, parseGoDuration, parseProviderConfig } from './credential-provider.js';
export type { CredentialProviderSpec, CredentialProvidersOptions } from './credential-provider.js';
export { runPlugin } from './exec-plugin.js';
export type { PluginResult, PluginRun } from './exec-plugin.js';
export { DigestVerifier, parseDigest, sha256Digest, verifyDigest } from './digest.js';
export { parseHostsToml, resolveHosts } from './hosts.js';
export type { ClientCertificate, HostCapability, HostsOptions, RegistryHost } from './hosts.js';
export { MAX_MANIFEST_BYTES, fetchManifest, parseManifest, pushManifest, referrersTag } from './manifests.js';
export type { FetchedManifest } from './manifests.js';
export {
  EMPTY_JSON_BYTES,
  EMPTY_JSON_DIGEST,
  MANIFEST_MEDIA_TYPES,
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
  MEDIA_TYPE_OCI_EMPTY,
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  isIndexMediaType,
  isManifestMediaType,
} from './media-types.js';
export type { Descriptor, ImageIndex, ImageManifest, Platform } from './media-types.js';
export { DEFAULT_PLATFORM, formatPlatform, normalizePlatform, parsePlatform, platformMatches, selectPlatformManifest } from './platform.js';
export { DOCKER_HUB_DOMAIN, apiHostOf, formatReference, isLoopbackHost, parseReference, parseRepository, toRepositoryRef } from './reference.js';
export type { ImageReference, RepositoryRef } from './reference.js';
export { addToFallbackIndex, listReferrers, pushArtifact } from './referrers.js';
export type { ArtifactBlob, PushArtifactOptions } from './referrers.js';
export { RegistryClient, credentialStore } from './registry-client.js';
export type { RegistryClientOptions, ResolvedImage } from './registry-client.js';
export type { HostRequest, RepoRequest, RepoResponse, Requester } from './requester.js';
export { Transport, parseRetryAfter } from './transport.js';
export type { TransportOptions } from './transport.js';
export type { Endpoint, HttpRequest, HttpResponse } from './http.js';
export { parseWwwAuthenticate } from './www-authenticate.js';
export type { AuthChallenge } from './www-authenticate.js';
export { restorePort } from './host-port.js';
export { isAuthRefusal } from './registry-errors.js';
