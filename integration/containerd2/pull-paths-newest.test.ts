/**
 * Every pull path into clip on the newest containerd 2.x of integration/go-modules.env
 * (CONTAINERD2_VERSIONS entry 0): lazy where containerd lets it be, rootfs identical to overlayfs.
 */
import t from 'tap';
import { pullPathsSuite } from './pull-suite.js';

t.setTimeout(1_200_000);
await pullPathsSuite(t, 0);
