import t from 'tap';
import { SpanOfferQueue, type SpanOffer } from '../../src/storage/span-offer-queue.js';
import { SteppedClock, recordingLogger, until } from './fixtures.js';

/** Offers whose publications land in `published`, in order. */
function offers() {
  const published: string[] = [];
  const reloads: string[] = [];
  const make = (key: string, bytes = 10, o: Partial<SpanOffer> = {}): SpanOffer => ({
    key,
    data: Buffer.alloc(bytes, key),
    reload: async () => {
      reloads.push(key);
      return Buffer.alloc(bytes, key);
    },
    publish: async (d) => {
      published.push(`${key}:${d.length}`);
    },
    ...o,
  });
  return { published, reloads, make };
}

t.test('offers wait while an on-demand fetch runs and until it has paused for idleMs, then go out in order', async (t) => {
  const clock = new SteppedClock();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxDelayMs: 10_000 });
  const { published, make } = offers();
  const end = q.demand();
  q.enqueue(make('a'));
  q.enqueue(make('b'));
  await until('the queue waits', () => clock.sleeping === 1);
  t.same(published, [], 'nothing published while the fetch runs');
  clock.advance(500);
  await until('the queue waits again', () => clock.sleeping === 1);
  t.same(published, [], 'still running after 500 ms: still nothing');
  end();
  clock.advance(50);
  await until('the queue waits for the idle time', () => clock.sleeping === 1);
  t.same(published, [], '50 ms after the fetch ended: not yet idle');
  clock.advance(50);
  await q.settled();
  t.same(published, ['a:10', 'b:10'], 'published in order once idle');
  t.equal(q.stats.forced, 0);
  t.equal(q.size, 0);
  t.equal(q.heldBytes, 0);
});

t.test('reads served from disk (touch) hold offers back like fetches, until idleMs after the last', async (t) => {
  const clock = new SteppedClock();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxDelayMs: 10_000 });
  const { published, make } = offers();
  q.touch();
  q.enqueue(make('a'));
  for (let i = 0; i < 5; i++) {
    await until('the queue waits', () => clock.sleeping === 1);
    clock.advance(60);
    q.touch();
    t.same(published, [], `a read ${(i + 1) * 60} ms in: nothing published`);
  }
  await until('the queue waits for the idle time', () => clock.sleeping === 1);
  clock.advance(99);
  await until('still waiting', () => clock.sleeping === 1);
  t.same(published, [], '99 ms after the last read: not yet');
  clock.advance(1);
  await q.settled();
  t.same(published, ['a:10'], 'published once the reads paused for idleMs');
  t.equal(q.stats.forced, 0, 'not forced');
});

t.test('reads served from disk that never pause do not hold an offer back past maxDelayMs', async (t) => {
  const clock = new SteppedClock();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxDelayMs: 500 });
  const { published, make } = offers();
  q.enqueue(make('a'));
  await q.settled();
  t.same(published, ['a:10'], 'no read yet: at once');
  q.touch();
  q.enqueue(make('b'));
  for (let waited = 0; waited < 500; waited += 50) {
    await until('the queue waits', () => clock.sleeping === 1 || published.length === 2);
    if (published.length === 2) break;
    clock.advance(50);
    q.touch();
  }
  await q.settled();
  t.same(published, ['a:10', 'b:10'], 'published at its deadline');
  t.equal(q.stats.forced, 1, 'counted as forced');
});

t.test('with no fetch at all, an offer goes out at once', async (t) => {
  const q = new SpanOfferQueue({ clock: new SteppedClock(), idleMs: 100 });
  const { published, make } = offers();
  q.enqueue(make('a'));
  await q.settled();
  t.same(published, ['a:10']);
});

t.test('reads that never pause do not hold an offer back past maxDelayMs', async (t) => {
  const clock = new SteppedClock();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxDelayMs: 1_000 });
  const { published, make } = offers();
  q.demand();
  q.enqueue(make('a'));
  for (let waited = 0; waited < 900; waited += 100) {
    await until('the queue waits', () => clock.sleeping === 1);
    clock.advance(100);
  }
  await until('the queue waits', () => clock.sleeping === 1);
  t.same(published, [], 'not before its deadline');
  clock.advance(100);
  await q.settled();
  t.same(published, ['a:10'], 'published at its deadline though the fetch still runs');
  t.equal(q.stats.forced, 1, 'counted as forced');
});

t.test('a queue longer than maxQueued publishes at once, reads or not', async (t) => {
  const clock = new SteppedClock();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxQueued: 2 });
  const { published, make } = offers();
  q.demand();
  q.enqueue(make('a'));
  q.enqueue(make('b'));
  await until('the queue waits', () => clock.sleeping === 1);
  q.enqueue(make('c'));
  clock.advance(100);
  await until('the oldest goes out', () => published.length === 1);
  t.same(published, ['a:10']);
  await until('the queue waits again', () => clock.sleeping === 1);
  t.equal(q.size, 2, 'back within the bound, the rest wait');
});

t.test('beyond maxHeldBytes an offer holds no bytes and re-reads its span; a span gone by then is dropped', async (t) => {
  const clock = new SteppedClock();
  const { log, records } = recordingLogger();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxHeldBytes: 25, log });
  const { published, reloads, make } = offers();
  const end = q.demand();
  q.enqueue(make('a'));
  q.enqueue(make('b'));
  q.enqueue(make('c'));
  q.enqueue(make('d', 10, { reload: async () => undefined }));
  t.equal(q.heldBytes, 20, 'two spans held, the third would pass 25 bytes');
  end();
  clock.advance(100);
  await q.settled();
  t.same(published, ['a:10', 'b:10', 'c:10'], 'c from its re-read, d not at all');
  t.same(reloads, ['c'], 'only the offer without bytes re-read its span');
  t.same({ reloaded: q.stats.reloaded, dropped: q.stats.dropped, published: q.stats.published }, { reloaded: 1, dropped: 1, published: 3 });
  t.ok(records.some((r) => r['msg'] === 'span offers dropped: their spans are no longer on disk' && r['key'] === 'd' && r['offers'] === 1));
});

t.test('a layer whose spans are all gone is logged once with a count, not once per span', async (t) => {
  const clock = new SteppedClock();
  const { log, records } = recordingLogger();
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxHeldBytes: 0, log });
  const { published, make } = offers();
  const end = q.demand();
  const gone = { reload: async () => undefined };
  for (let i = 0; i < 500; i++) q.enqueue(make(`a${i}`, 10, { group: 'layer-a', ...gone }));
  for (let i = 0; i < 3; i++) q.enqueue(make(`b${i}`, 10, { group: 'layer-b', ...gone }));
  q.enqueue(make('c', 10, { group: 'layer-c', publish: () => Promise.reject(new Error('boom')) }));
  q.enqueue(make('c2', 10, { group: 'layer-c', publish: () => Promise.reject(new Error('boom')) }));
  q.enqueue(make('d', 10, { group: 'layer-d' }));
  end();
  clock.advance(100);
  await q.settled();
  t.same(published, ['d:10']);
  t.equal(q.stats.dropped, 505);
  const dropped = records.filter((r) => r['msg'] === 'span offers dropped: their spans are no longer on disk');
  t.same(dropped.map((r) => [r['group'], r['offers'], r['key']]), [['layer-a', 500, 'a0'], ['layer-b', 3, 'b0']]);
  const failed = records.filter((r) => r['msg'] === 'span offers failed');
  t.same(failed.map((r) => [r['group'], r['offers'], r['err']]), [['layer-c', 2, 'boom']]);

  // The next batch starts a new count.
  q.enqueue(make('a500', 10, { group: 'layer-a', ...gone }));
  await q.settled();
  t.same(records.filter((r) => r['msg'] === 'span offers dropped: their spans are no longer on disk').map((r) => r['offers']), [500, 3, 1]);
});

t.test('a publication that fails does not stop the queue', async (t) => {
  const q = new SpanOfferQueue({ clock: new SteppedClock() });
  const { published, make } = offers();
  q.enqueue(make('a', 10, { publish: () => Promise.reject(new Error('boom')) }));
  q.enqueue(make('b'));
  await q.settled();
  t.same(published, ['b:10']);
  t.equal(q.stats.dropped, 1);
});

t.test('close publishes what is queued without waiting for idle, takes nothing new, and drops what its flush time leaves', async (t) => {
  const clock = new SteppedClock();
  const { log, records } = recordingLogger();
  const q = new SpanOfferQueue({ clock, idleMs: 100, closeFlushMs: 50, log });
  const { published, make } = offers();
  q.demand();
  q.enqueue(make('a'));
  // b's publication takes 60 ms of the clock: past the flush time, so c is dropped.
  q.enqueue(make('b', 10, { publish: async (d) => {
    published.push(`b:${d.length}`);
    clock.advance(60);
  } }));
  q.enqueue(make('c'));
  await until('the queue waits', () => clock.sleeping === 1);
  await q.close();
  q.enqueue(make('d'));
  await q.settled();
  t.same(published, ['a:10', 'b:10'], 'a and b published at close though the fetch still runs; d refused');
  t.same({ published: q.stats.published, dropped: q.stats.dropped, forced: q.stats.forced }, { published: 2, dropped: 1, forced: 0 });
  t.equal(q.heldBytes, 0);
  t.ok(records.some((r) => r['msg'] === 'span offers to the ContentCache dropped at shutdown' && r['offers'] === 1));
  t.ok(records.some((r) => r['msg'] === 'span offers to the ContentCache' && r['published'] === 2));
});

t.test('offers also wait while the process answers any FUSE request (read activity), within maxDelayMs', async (t) => {
  const clock = new SteppedClock();
  const activity = { reading: true };
  const q = new SpanOfferQueue({ clock, idleMs: 100, maxDelayMs: 1000, activity });
  const { published, make } = offers();
  q.enqueue(make('a'));
  for (let i = 0; i < 3; i++) {
    await until('the queue waits', () => clock.sleeping === 1);
    clock.advance(100);
  }
  await until('the queue waits', () => clock.sleeping === 1);
  t.same(published, [], 'held while requests run elsewhere (no touch, no fetch)');
  activity.reading = false;
  clock.advance(100);
  await q.settled();
  t.same(published, ['a:10'], 'published once they paused');
  t.equal(q.stats.forced, 0);
  activity.reading = true;
  q.enqueue(make('b'));
  for (let waited = 0; waited < 1000; waited += 100) {
    await until('the queue waits', () => clock.sleeping === 1 || published.length === 2);
    clock.advance(100);
  }
  await q.settled();
  t.same(published, ['a:10', 'b:10'], 'never held past maxDelayMs');
  t.equal(q.stats.forced, 1, 'counted as forced');
});
