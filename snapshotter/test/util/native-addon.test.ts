import t from 'tap';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeAddon } from '../../src/util/native-addon.js';

t.test('finds a built addon from any depth of the tree, honours the env override, and says undefined for one not built', async (t) => {
  const zran = loadNativeAddon<{ zlibVersion: string }>('clip_zran', 'CLIP_TEST_NO_SUCH_ENV', import.meta.url);
  t.type(zran?.zlibVersion, 'string', 'clip_zran found by walking up from the test');
  t.equal(loadNativeAddon('clip_no_such_addon', 'CLIP_TEST_NO_SUCH_ENV', import.meta.url), undefined, 'an addon never built');
  const root = join(fileURLToPath(import.meta.url), '..', '..', '..', '..', '..');
  process.env['CLIP_TEST_ADDON_PATH'] = join(root, 'snapshotter', 'native', 'build', 'Release', 'clip_zran.node');
  t.teardown(() => delete process.env['CLIP_TEST_ADDON_PATH']);
  const viaEnv = loadNativeAddon<{ zlibVersion: string }>('clip_no_such_addon', 'CLIP_TEST_ADDON_PATH', import.meta.url);
  t.equal(viaEnv?.zlibVersion, zran?.zlibVersion, 'the env variable names the file to load');
});
