/** Reads served from the page cache only (the clip_pagecache addon), on a real file. */
import t from 'tap';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pageCacheReadsAvailable, readCachedNow } from '../../src/util/page-cache-read.js';

t.test('a file just written is copied at once; past its end nothing', async (t) => {
  t.ok(pageCacheReadsAvailable(), 'make deps builds the addon');
  const dir = mkdtempSync(join(tmpdir(), 'clip-pagecache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 13) & 0xff;
  writeFileSync(join(dir, 'f'), data);
  const fd = openSync(join(dir, 'f'), 'r');
  t.teardown(() => closeSync(fd));
  const buf = Buffer.alloc(70_000, 0xee);
  t.equal(readCachedNow(fd, buf, 10, 65_536, 123_457), 65_536);
  t.same(buf.subarray(10, 10 + 65_536), data.subarray(123_457, 123_457 + 65_536));
  t.equal(buf[9], 0xee, 'nothing before the buffer offset');
  t.equal(readCachedNow(fd, buf, 0, 1000, data.length - 100), 100, 'short at the end of the file');
  t.equal(readCachedNow(fd, buf, 0, 1000, data.length + 5), 0, 'past the end');
  t.equal(readCachedNow(fd, buf, 0, 0, 0), 0, 'nothing asked');
  t.throws(() => readCachedNow(fd, buf, 69_999, 2, 0), { code: 'CLIP_PAGECACHE_ARGS' }, 'a range outside the buffer is refused');
  t.throws(() => readCachedNow(987_654, buf, 0, 10, 0), { code: 'EBADF' }, 'a bad descriptor fails with its errno');
});
