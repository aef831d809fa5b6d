export { buildAndPushImages, buildImage, pushImage, IMAGE_SPECS, IMAGE_CACHE_DIR } from './build-images.js';
export type { ImageSpec, BuiltImage, PushedImage, PushTarget, ImageName } from './build-images.js';
export { writeOciLayout, writeImageManifest, MEDIA_MANIFEST, MEDIA_CONFIG, MEDIA_LAYER_GZIP } from './oci-layout.js';
export type { LayerInfo, ImageInfo, ImageConfigOptions } from './oci-layout.js';
export { packLayer, LAYER_MTIME } from './layer-tar.js';
export { StagingTree } from './staging-tree.js';
export type { Owner } from './staging-tree.js';
export { pauseImageSpec } from './pause-image.js';
export { addBusyboxRootfs, busyboxHash, BUSYBOX_PATH } from './busybox-rootfs.js';
export {
  TRICKY_LAYERS,
  CAP_NET_RAW_XATTR,
  LONG_NAME_150,
  LONG_NAME_255,
  LONG_PATH,
  UNICODE_FILE,
  UNICODE_DIR_FILE,
  UNICODE_DELETED,
} from './tricky-image.js';
