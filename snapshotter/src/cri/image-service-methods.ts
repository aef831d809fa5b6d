/**
 * The CRI v1 ImageService (k8s.io/cri-api v0.37.0): every method the proxy forwards, with its
 * shape. The proxy relays messages as bytes, so only the names and streaming kinds matter here.
 */
export const IMAGE_SERVICE = 'runtime.v1.ImageService';

/** One ImageService method: its name and whether the server streams responses. */
export interface ImageServiceMethod {
  name: string;
  responseStream: boolean;
}

export const IMAGE_SERVICE_METHODS: readonly ImageServiceMethod[] = [
  { name: 'ListImages', responseStream: false },
  { name: 'StreamImages', responseStream: true },
  { name: 'ImageStatus', responseStream: false },
  { name: 'PullImage', responseStream: false },
  { name: 'RemoveImage', responseStream: false },
  { name: 'ImageFsInfo', responseStream: false },
];

/** The gRPC path of a method, e.g. `/runtime.v1.ImageService/PullImage`. */
export function methodPath(name: string): string {
  return `/${IMAGE_SERVICE}/${name}`;
}
