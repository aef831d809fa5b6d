/** Media types and the JSON shapes of the OCI image spec that the registry client speaks. */

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const MEDIA_TYPE_DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const MEDIA_TYPE_OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** The `{}` blob that OCI 1.1 artifacts use as their config. */
export const EMPTY_JSON_BYTES: Buffer = Buffer.from('{}');
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';

/** Every manifest media type a resolve accepts, best first. */
export const MANIFEST_MEDIA_TYPES: readonly string[] = [
  MEDIA_TYPE_OCI_INDEX,
  MEDIA_TYPE_OCI_MANIFEST,
  MEDIA_TYPE_DOCKER_LIST,
  MEDIA_TYPE_DOCKER_MANIFEST,
];

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** True for the two index media types (OCI index, Docker manifest list). */
export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE_OCI_INDEX || mediaType === MEDIA_TYPE_DOCKER_LIST;
}

/** True for the two single-image manifest media types. */
export function isManifestMediaType(mediaType: string): boolean {
  return mediaType === MEDIA_TYPE_OCI_MANIFEST || mediaType === MEDIA_TYPE_DOCKER_MANIFEST;
}
