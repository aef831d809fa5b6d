/** Layer fixtures for the FUSE integration tests: source trees, GNU tar layers, mounted layers. */
import { createReadStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildIndex } from '../../snapshotter/src/clip/build-index.js';
import { decodeIndex } from '../../snapshotter/src/clip/decode-index.js';
import { encodeIndex } from '../../snapshotter/src/clip/encode-index.js';
import { LayerFilesystem, type FuseDriver, type IdTranslation } from '../../snapshotter/src/fuse/index.js';
import { runCommand } from '../harness/run-command.js';
import { FileLayerReader } from './file-layer-reader.js';

const sh = async (script: string): Promise<string> => (await runCommand('sh', ['-euc', script], { timeoutMs: 120_000 })).stdout;

/** Fill `dir` with every kind of entry a layer can hold. */
export async function makeRichTree(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await sh(`cd '${dir}'
    printf 'hello\\n' > a.txt
    : > empty
    head -c 1500000 /dev/urandom > big.bin
    mkdir -p d1/d2/d3 && printf 'deep' > d1/d2/d3/file
    ln -s ../a.txt d1/link && ln -s /etc/passwd abs-link && ln -s 'dangling target' dangling
    printf 'linked' > hl1 && ln hl1 hl2 && ln hl1 d1/hl3
    printf '#!/bin/sh\\n' > suid && chmod 4755 suid
    mkdir sgid && chmod 2755 sgid && mkdir sticky && chmod 1777 sticky
    printf 'owned' > owned && chown 1234:5678 owned && chmod 0640 owned
    mkfifo fifo && mknod chr c 1 3 && mknod blk b 7 200
    printf 'x' > xa && setfattr -n user.test -v hello xa && setfattr -n trusted.demo -v 0x00ff01 xa
    : > .wh.gone
    mkdir opq && : > opq/.wh..wh..opq && printf 'kept' > opq/inside
    touch -d '2001-02-03 04:05:06.789' a.txt`);
}

/** Tar a directory the way image layers are usually written (GNU tar, pax for xattrs). */
export async function tarDir(dir: string, tarPath: string): Promise<void> {
  await runCommand('tar', ['--format=posix', '--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', tarPath, '-C', dir, '.']);
}

/** Extract a layer tar as a reference tree. */
export async function untar(tarPath: string, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await runCommand('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', tarPath, '-C', dir]);
}

/** A mounted layer and what it was built from. */
export interface MountedLayer {
  fs: LayerFilesystem;
  reader: FileLayerReader;
  mountpoint: string;
  diffId: string;
}

/** Index a tar with the real builder and mount it read-only at `mountpoint` (owners translated by `ids`). */
export async function mountTar(tarPath: string, mountpoint: string, ids?: IdTranslation, driver?: FuseDriver): Promise<MountedLayer> {
  const index = await buildIndex(createReadStream(tarPath));
  const view = decodeIndex(encodeIndex(index));
  const reader = await FileLayerReader.open(tarPath, view.meta.diffId);
  await mkdir(mountpoint, { recursive: true });
  const fs = new LayerFilesystem({ view, reader, ids, driver });
  await fs.mount(mountpoint);
  return { fs, reader, mountpoint, diffId: view.meta.diffId };
}

/** Write files given as relative path → content ('' + trailing '/' makes a directory). */
export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const path = join(dir, rel);
    if (rel.endsWith('/')) await mkdir(path, { recursive: true });
    else {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, content);
    }
  }
}

export { sh };
