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
