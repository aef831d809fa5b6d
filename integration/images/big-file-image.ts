/**
 * The large-file image of the read-pattern tests (readahead, splice, ContentCache bulk reads):
 * busybox plus one gzip layer holding `/data/big.bin`, `mib` MiB of random bytes.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildAndPushImages } from './build-images.js';
import { packLayer } from './layer-tar.js';
import { baseLayerOf, gzipLayer, pushCraftedImage, type CraftedImage } from '../security/crafted-image.js';

/** What a test checks reads against: the pushed image, the file's bytes and the layer's uncompressed tar. */
export interface BigFileImage {
  image: CraftedImage;
  payload: Buffer;
  tar: Buffer;
}

/** Build the layer under `workDir` and push the image as `name` to the registry at `hostPort`. */
export async function pushBigFileImage(hostPort: string, workDir: string, name: string, mib: number): Promise<BigFileImage> {
  const { busybox } = await buildAndPushImages({ hostPort }, ['busybox']);
  const src = join(workDir, 'layer');
  mkdirSync(join(src, 'data'), { recursive: true });
  const payload = randomBytes(mib << 20);
  writeFileSync(join(src, 'data', 'big.bin'), payload);
  await packLayer(src, `${src}.tar`);
  const tar = readFileSync(`${src}.tar`);
  const image = await pushCraftedImage(hostPort, name, [baseLayerOf(busybox), gzipLayer(tar)]);
  return { image, payload, tar };
}
