import t from 'tap';
import { boundedMap } from '../../src/util/bounded-map.js';

t.test('boundedMap keeps order, bounds concurrency and stops at the first failure', async (t) => {
  let inFlight = 0;
  let max = 0;
  const out = await boundedMap([5, 1, 4, 2, 3], 2, async (x) => {
    max = Math.max(max, ++inFlight);
    await new Promise((r) => setTimeout(r, x * 3));
    inFlight--;
    return x * 10;
  });
  t.same(out, [50, 10, 40, 20, 30]);
  t.equal(max, 2);
  const started: number[] = [];
  await t.rejects(boundedMap([1, 2, 3, 4, 5], 1, async (x) => {
    started.push(x);
    if (x === 2) throw new Error('boom');
    return x;
  }), /boom/);
  t.same(started, [1, 2], 'nothing starts after a failure');
});
