import t from 'tap';
import { LruMap } from '../../src/util/lru-map.js';

t.test('LruMap evicts the least recently used entry', async (t) => {
  const m = new LruMap<string, number>(2);
  m.set('a', 1);
  m.set('b', 2);
  m.get('a');
  m.set('c', 3);
  t.equal(m.get('b'), undefined);
  t.equal(m.get('a'), 1);
  t.equal(m.size, 2);
});

t.test('LruMap with a weight is bounded by the sum of weights (the ContentCache\'s decoded chunks, by bytes)', async (t) => {
  const lru = new LruMap<string, Buffer>(100, (b) => b.length);
  lru.set('a', Buffer.alloc(40));
  lru.set('b', Buffer.alloc(40));
  t.ok(lru.get('a'), 'a is now most recent');
  lru.set('c', Buffer.alloc(40));
  t.equal(lru.has('b'), false, 'b evicted');
  t.equal(lru.has('a') && lru.has('c'), true);
  t.equal(lru.weight, 80);
  lru.set('huge', Buffer.alloc(101));
  t.equal(lru.has('huge'), false, 'heavier than the capacity: not kept');
  lru.set('a', Buffer.alloc(10));
  t.equal(lru.weight, 50, 'replacing updates the weight');
  lru.set('x:1', Buffer.alloc(1));
  lru.set('x:2', Buffer.alloc(1));
  lru.deleteWhere((k) => k.startsWith('x:'));
  t.equal(lru.weight, 50);
  t.equal(lru.size, 2);
});

t.test('LruMap tells onRemove of every entry that leaves: evicted, deleted, replaced, matched; not of one never kept', async (t) => {
  const gone: string[] = [];
  const lru = new LruMap<string, number>(10, (w) => w, (k, v) => gone.push(`${k}=${v}`));
  lru.set('a', 4);
  lru.set('b', 4);
  lru.get('a');
  lru.set('c', 4);
  t.same(gone, ['b=4'], 'the least recently used evicted');
  lru.set('a', 5);
  t.same(gone, ['b=4', 'a=4'], 'the replaced value');
  lru.delete('c');
  lru.delete('c');
  t.same(gone, ['b=4', 'a=4', 'c=4'], 'deleted once');
  lru.set('huge', 11);
  t.same(gone, ['b=4', 'a=4', 'c=4'], 'a value heavier than the capacity was never kept: the caller still owns it');
  lru.deleteWhere(() => true);
  t.same(gone, ['b=4', 'a=4', 'c=4', 'a=5']);
  t.equal(lru.weight, 0);
});
