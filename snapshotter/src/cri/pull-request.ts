/**
 * Decoding the two fields of a CRI PullImageRequest the proxy needs (the image and its AuthConfig),
 * with the vendored excerpt of the CRI proto (snapshotter/proto/cri/pull-image.proto). The request
 * itself is forwarded as the bytes the kubelet sent.
 */
import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';
import { invalidArgument } from '../errors/index.js';
import type { CriAuthConfig } from './auth-config.js';

const PROTO = fileURLToPath(new URL('../../../../snapshotter/proto/cri/pull-image.proto', import.meta.url));

/** What the proxy reads from a PullImageRequest. */
export interface PullImageFields {
  image: string;
  auth: CriAuthConfig | undefined;
}

let decode: ((bytes: Buffer) => unknown) | undefined;

function decoder(): (bytes: Buffer) => unknown {
  if (decode) return decode;
  const def = protoLoader.loadSync(PROTO, { keepCase: true, longs: Number, enums: Number, defaults: false });
  const svc = def['runtime.v1.ImageService'] as Record<string, protoLoader.MethodDefinition<unknown, unknown>> | undefined;
  const method = svc?.['PullImage'];
  if (!method) throw new Error('cri proto: runtime.v1.ImageService/PullImage missing');
  decode = (bytes) => method.requestDeserialize(bytes);
  return decode;
}

/** The image and AuthConfig of a serialized PullImageRequest; invalid_argument when it does not decode. */
export function decodePullImage(bytes: Buffer): PullImageFields {
  let msg: { image?: { image?: unknown }; auth?: CriAuthConfig };
  try {
    msg = decoder()(bytes) as typeof msg;
  } catch (err) {
    // No cause: a decoder's message may quote the bytes, and they hold secrets.
    void err;
    throw invalidArgument('CLIP_CRI_BAD_REQUEST', 'CRI PullImageRequest does not decode');
  }
  const image = typeof msg.image?.image === 'string' ? msg.image.image : '';
  return { image, auth: msg.auth ?? undefined };
}
