import t from 'tap';
import { hostFromImages, splitImageName } from '../../src/containerd/image-store-host.js';
import type { ImageRecord } from '../../src/containerd/types.js';

const M1 = `sha256:${'1'.repeat(64)}`;
const M2 = `sha256:${'2'.repeat(64)}`;
const img = (name: string, digest = M2): ImageRecord => ({ name, labels: {}, target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 } });

t.test('splitImageName', async (t) => {
  t.same(splitImageName('127.0.0.1:5000/clip-test/busybox:latest'), { host: '127.0.0.1', port: '5000', repository: 'clip-test/busybox' });
  t.same(splitImageName(`reg.example/a/b@${M1}`), { host: 'reg.example', port: '', repository: 'a/b' });
  t.same(splitImageName('reg.example:443/a:1@' + M1), { host: 'reg.example', port: '443', repository: 'a' });
  t.equal(splitImageName('busybox'), undefined, 'no host part');
  t.equal(splitImageName('host:notaport/a'), undefined, 'a port must be digits');
  t.equal(splitImageName('host/'), undefined, 'no repository');
});

t.test('hostFromImages', async (t) => {
  const images = [img('127.0.0.1:5000/clip-test/a:latest'), img('127.0.0.1:5001/clip-test/b:latest', M1), img('127.0.0.1:5001/clip-test/a:v2'), img('other:9/clip-test/a:x')];
  t.equal(hostFromImages(images, '127.0.0.1', 'clip-test/a', M1), undefined, 'a record of another repository with that manifest does not decide');
  t.equal(hostFromImages([img('127.0.0.1:5000/clip-test/a:latest', M1), img('127.0.0.1:5001/clip-test/a:v2')], '127.0.0.1', 'clip-test/a', M1), '127.0.0.1:5000', 'same repository and the manifest digest decide');
  t.equal(hostFromImages(images, '127.0.0.1', 'clip-test/a', `sha256:${'3'.repeat(64)}`), undefined, 'two ports for the repository and no digest match: ambiguous');
  t.equal(hostFromImages(images, '127.0.0.1', 'clip-test/b', `sha256:${'3'.repeat(64)}`), '127.0.0.1:5001', 'one port for the repository');
  t.equal(hostFromImages([img('127.0.0.1:5000/x/y:1')], '127.0.0.1', 'clip-test/new', M1), '127.0.0.1:5000', 'a new repository on a host the store knows under one port');
  t.equal(hostFromImages([img('127.0.0.1/x/y:1'), img('127.0.0.1:5000/z:1')], '127.0.0.1', 'clip-test/new', M1), undefined, 'default port and 5000 both in use: ambiguous');
  t.equal(hostFromImages([img('127.0.0.1/clip-test/new:1')], '127.0.0.1', 'clip-test/new', M1), '127.0.0.1', 'the default port is an answer too');
  t.equal(hostFromImages([], '127.0.0.1', 'clip-test/a', M1), undefined, 'empty store');
});
