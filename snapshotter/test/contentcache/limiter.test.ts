import t from 'tap';
import { Limiter } from '../../src/contentcache/limiter.js';

t.test('never more than the limit at once; every task runs; failures free their slot', async (t) => {
  const lim = new Limiter(3);
  let active = 0;
  let peak = 0;
  const results = await Promise.allSettled(
    Array.from({ length: 20 }, (_, i) =>
      lim.run(async () => {
        peak = Math.max(peak, ++active);
        await new Promise((r) => setImmediate(r)); // stay active while the others start
        active--;
        if (i % 7 === 0) throw new Error('boom');
        return i;
      }),
    ),
  );
  t.equal(peak, 3);
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 17);
});
