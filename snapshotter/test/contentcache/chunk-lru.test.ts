import t from 'tap';
import { ChunkLru } from '../../src/contentcache/chunk-lru.js';

t.test('bounded by bytes, evicting the least recently used', async (t) => {
  const lru = new ChunkLru(100);
  lru.set('a', Buffer.alloc(40));
  lru.set('b', Buffer.alloc(40));
  t.ok(lru.get('a'), 'a is now most recent');
  lru.set('c', Buffer.alloc(40));
  t.equal(lru.has('b'), false, 'b evicted');
  t.equal(lru.has('a') && lru.has('c'), true);
  t.equal(lru.bytes, 80);
  lru.set('huge', Buffer.alloc(101));
  t.equal(lru.has('huge'), false, 'larger than the budget: not kept');
  lru.set('a', Buffer.alloc(10));
  t.equal(lru.bytes, 50, 'replacing updates the byte count');
  lru.set('x:1', Buffer.alloc(1));
  lru.set('x:2', Buffer.alloc(1));
  lru.deletePrefix('x:');
  t.equal(lru.bytes, 50);
});
