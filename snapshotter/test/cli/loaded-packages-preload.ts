// Preload (`node --import`) for loaded-packages.test.ts: records what a real `clip-snapshotter`
// process loads. ES modules go through the load hook as they load; CommonJS ones are in
// require.cache, written to the same file when the process exits.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const file = process.env['CLIP_LOADED_MODULES_FILE'] ?? '';
if (file !== '') {
  register('./loaded-packages-hooks.js', import.meta.url, { data: { file } });
  const require = createRequire(import.meta.url);
  process.once('exit', () => appendFileSync(file, Object.keys(require.cache).join('\n') + '\n'));
}
