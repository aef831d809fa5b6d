import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { SpareBufferPool } from '../../src/util/spare-buffer-pool.js';

t.test('holds at most maxCount buffers; take returns undefined once empty', async (t) => {
  const pool = new SpareBufferPool({ maxCount: 2, idleMs: 60_000 });
  t.equal(pool.take(), undefined, 'an empty pool hands out nothing');
  t.equal(pool.keep(new ArrayBuffer(8)), true);
  t.equal(pool.keep(new ArrayBuffer(8)), true);
  t.equal(pool.keep(new ArrayBuffer(8)), false, 'a third is not kept');
  t.equal(pool.size, 2);
  t.ok(pool.take(8));
  t.ok(pool.take(8));
  t.equal(pool.take(), undefined, 'empty again');
  pool.clear();
});

t.test('a buffer smaller than asked for is not handed out; ones below minBytes are not kept', async (t) => {
  const pool = new SpareBufferPool({ maxCount: 4, minBytes: 16, idleMs: 60_000 });
  t.equal(pool.keep(new ArrayBuffer(8)), false, 'below minBytes: not kept');
  t.equal(pool.keep(new ArrayBuffer(0)), false);
  t.equal(pool.keep(new SharedArrayBuffer(64)), false, 'shared memory is never kept');
  const small = new ArrayBuffer(32);
  const big = new ArrayBuffer(64);
  pool.keep(big);
  pool.keep(small);
  t.equal(pool.take(100), undefined, 'none large enough');
  t.equal(pool.take(40), big, 'the one that fits, not the last kept');
  t.equal(pool.take(40), undefined, 'the small one stays');
  t.equal(pool.take(), small);
  pool.clear();
});

t.test('every buffer is dropped once nothing was kept for idleMs; clear drops them at once', async (t) => {
  const pool = new SpareBufferPool({ maxCount: 4, idleMs: 30 });
  pool.keep(new ArrayBuffer(8));
  pool.keep(new ArrayBuffer(8));
  t.equal(pool.size, 2);
  // A loaded machine may fire the timer late: wait for it, bounded, rather than for a fixed time.
  const deadline = Date.now() + 5_000;
  while (pool.size > 0 && Date.now() < deadline) await sleep(10);
  t.equal(pool.size, 0, 'idle: emptied');
  t.equal(pool.take(), undefined);
  pool.keep(new ArrayBuffer(8));
  pool.clear();
  t.equal(pool.size, 0, 'clear empties it at once');
});
