import t from 'tap';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hashFile, hashFileInline, hashFileStats } from '../../src/storage/hash-file.js';

t.test('a file is hashed on the worker thread, to the same digest as inline', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'clip-hash-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131) & 0xff;
  const path = join(dir, 'layer');
  await writeFile(path, bytes);
  const expected = createHash('sha256').update(bytes).digest('hex');
  const before = { ...hashFileStats };
  t.equal(await hashFile(path), expected);
  t.same(hashFileStats, { offThread: before.offThread + 1, inline: before.inline }, 'hashed by the worker, not on this thread');
  t.equal(await hashFileInline(path), expected);
  await writeFile(path, Buffer.concat([bytes.subarray(1), Buffer.from([1])]));
  t.not(await hashFile(path), expected, 'other bytes, another digest');
  await t.rejects(hashFile(join(dir, 'missing')), { code: 'ENOENT' });
});
