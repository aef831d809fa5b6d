import t from 'tap';
import { ReadActivity } from '../../src/storage/read-activity.js';
import { SteppedClock, until } from './fixtures.js';

/** A pass whose end the test can see. */
function passing(a: ReadActivity, stage: Parameters<ReadActivity['pass']>[0], signal?: AbortSignal): { done: () => boolean; p: Promise<void> } {
  let done = false;
  const p = a.pass(stage, signal).then(() => {
    done = true;
  });
  return { done: () => done, p };
}

t.test('no FUSE request: a batch passes at once and nothing is counted', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 1000 });
  await a.pass('publish');
  t.equal(clock.sleeping, 0, 'no sleep');
  t.same(a.stats.publish, { waits: 0, waitedMs: 0, forced: 0 });
  t.equal(a.reading, false);
});

t.test('a batch waits while a request is in flight and until none ran for idleMs', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 10_000 });
  a.begin();
  t.equal(a.reading, true);
  const b = passing(a, 'extract');
  await until('the batch waits', () => clock.sleeping === 1);
  clock.advance(300);
  await until('it looks again while the request runs', () => clock.sleeping === 1);
  t.equal(b.done(), false, 'held while the request runs');
  a.end();
  clock.advance(99);
  await until('it waits for the idle time', () => clock.sleeping === 1);
  t.equal(b.done(), false, '99 ms after the reply: still held');
  clock.advance(1);
  await b.p;
  t.same(a.stats.extract, { waits: 1, waitedMs: 400, forced: 0 }, 'one wait of 400 ms, not forced');
  t.same(a.stats.publish, { waits: 0, waitedMs: 0, forced: 0 }, 'other stages untouched');
});

t.test('requests answered at once (touch) hold a batch for idleMs after the last', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 10_000 });
  a.touch();
  const b = passing(a, 'fill');
  for (let i = 0; i < 5; i++) {
    await until('the batch waits', () => clock.sleeping === 1);
    clock.advance(60);
    a.touch();
  }
  await until('the batch waits', () => clock.sleeping === 1);
  t.equal(b.done(), false, 'held while requests keep coming');
  clock.advance(100);
  await b.p;
  t.equal(a.stats.fill.waits, 1);
  t.equal(a.stats.fill.waitedMs, 400);
  t.equal(a.stats.fill.forced, 0);
});

t.test('reads that never pause hold a batch at most maxDelayMs; then the gate stays open for runMs', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 1000, runMs: 200 });
  a.begin();
  const b = passing(a, 'publish');
  for (let waited = 0; waited < 1000; waited += 100) {
    await until('the batch waits', () => clock.sleeping === 1 || b.done());
    t.equal(b.done(), false, `held ${waited} ms`);
    clock.advance(100);
  }
  await b.p;
  t.same(a.stats.publish, { waits: 1, waitedMs: 1000, forced: 1 }, 'let through by the bound');
  // Still reading: batches within runMs of the forced one pass without waiting.
  await a.pass('publish');
  await a.pass('extract');
  t.equal(a.stats.publish.waits, 1, 'the next batch did not wait');
  t.equal(a.stats.extract.waits, 0, 'nor did another stage');
  clock.advance(200);
  const c = passing(a, 'publish');
  await until('after runMs batches wait again', () => clock.sleeping === 1);
  t.equal(c.done(), false);
  a.end();
  clock.advance(100);
  await c.p;
  t.same(a.stats.publish, { waits: 2, waitedMs: 1100, forced: 1 }, 'the second wait ended when the reads paused');
});

t.test('maxDelayMs 0: background work never waits', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 0 });
  a.begin();
  await a.pass('hash');
  t.equal(clock.sleeping, 0);
  t.same(a.stats.hash, { waits: 0, waitedMs: 0, forced: 0 });
});

t.test('an aborted signal ends the wait (the caller stops its work)', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 100, maxDelayMs: 10_000 });
  a.begin();
  const ac = new AbortController();
  const b = passing(a, 'fill', ac.signal);
  await until('the batch waits', () => clock.sleeping === 1);
  ac.abort();
  await b.p;
  t.equal(clock.sleeping, 0, 'its sleep is gone');
  t.equal(a.stats.fill.waits, 1);
  t.equal(a.stats.fill.forced, 0);
});

t.test('every waiting batch of several stages is counted, and an end without a begin does not go negative', async (t) => {
  const clock = new SteppedClock();
  const a = new ReadActivity({ clock, idleMs: 50, maxDelayMs: 10_000 });
  a.end();
  clock.advance(50);
  t.equal(a.reading, false, 'a stray end only notes the time');
  a.begin();
  const batches = [passing(a, 'publish'), passing(a, 'publish'), passing(a, 'extract')];
  await until('three batches wait', () => clock.sleeping === 3);
  a.end();
  clock.advance(50);
  await Promise.all(batches.map((b) => b.p));
  t.equal(a.stats.publish.waits, 2);
  t.equal(a.stats.extract.waits, 1);
  t.equal(a.reading, false);
});
