/** The pod sandbox ("pause") image of the CRI tests: busybox's sleep as the pause process. */
import { addBusyboxRootfs } from './busybox-rootfs.js';
import type { ImageSpec } from './build-images.js';
import type { StagingTree } from './staging-tree.js';

/** A pause image named `name` (the image cache keys on the name, so give each test its own). */
export function pauseImageSpec(name: string): ImageSpec {
  return {
    name,
    layers: [
      async (t: StagingTree) => {
        await addBusyboxRootfs(t);
        t.file('etc/clip-pause', 'pause\n');
      },
    ],
    config: { cmd: ['/bin/sleep', '2147483647'] },
  };
}
