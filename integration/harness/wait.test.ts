/** The harness's polling helpers, with fake probes (no services). */
import t from 'tap';
import { waitQuiet } from './wait.js';

await t.test('waitQuiet ends after the asked-for quiet intervals in a row; a busy one starts the count again', async (t) => {
  // Readings 0, 1, 1, 2, 2, 2, …: quiet intervals are the ones whose reading did not change.
  const readings = [0, 1, 1, 2, 2, 2, 2];
  let probes = 0;
  const r = await waitQuiet({ probe: () => readings[Math.min(probes++, readings.length - 1)] as number, quiet: (a, b) => a === b, intervalMs: 1, quietIntervals: 2, atMostMs: 10_000 });
  t.equal(r.quiet, true);
  t.equal(probes, 6, 'the first reading, a busy interval, a quiet one, a busy one, then two quiet ones');
});

await t.test('waitQuiet gives up at its bound on a probe that never goes quiet, and says so', async (t) => {
  let n = 0;
  const r = await waitQuiet({ probe: async () => n++, quiet: (a, b) => a === b, intervalMs: 5, quietIntervals: 2, atMostMs: 60 });
  t.equal(r.quiet, false);
  t.ok(r.waitedS >= 0.06 && r.waitedS < 5, `stopped by the bound (${r.waitedS} s)`);
});
