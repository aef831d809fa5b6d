// No import cycle under snapshotter/src: neither between files nor between folders. A folder cycle
// means two features that cannot be understood (or changed) one without the other; a file cycle
// means module evaluation order decides which one sees the other's exports as undefined. Type-only
// imports count too: they are erased at run time but still tie the two modules' designs together.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { cycles, folderOf, importEdges, sourceFiles } from './import-graph.js';

// build/snapshotter/test/structure/ → snapshotter/src/ (the TypeScript sources, not the build).
const SRC = fileURLToPath(new URL('../../../../snapshotter/src/', import.meta.url));
const files = sourceFiles(SRC);
const edges = importEdges(SRC);

t.test('the sources are there to check', async (t) => {
  t.ok(files.length > 100, `${files.length} source files under ${SRC}`);
  t.ok(edges.length > files.length, `${edges.length} imports`);
});

t.test('no import cycle between files', async (t) => {
  t.same(cycles(files, edges.map((e) => [e.from, e.to] as const)), []);
});

t.test('no import cycle between folders', async (t) => {
  const folders = new Set(files.map(folderOf));
  const between = edges.filter((e) => folderOf(e.from) !== folderOf(e.to));
  const found = cycles(folders, between.map((e) => [folderOf(e.from), folderOf(e.to)] as const));
  // Name the imports that close each cycle, so the failure says where to cut.
  const witnesses = found.map((members) => between
    .filter((e) => members.includes(folderOf(e.from)) && members.includes(folderOf(e.to)))
    .map((e) => `${e.from} -> ${e.to}`));
  t.same(witnesses, []);
});

t.test('the checker finds cycles', async (t) => {
  t.same(cycles(['a', 'b', 'c', 'd'], [['a', 'b'], ['b', 'c'], ['c', 'a'], ['c', 'd']]), [['a', 'b', 'c']]);
  t.same(cycles(['a'], [['a', 'a']]), [['a']], 'a module importing itself');
  t.same(cycles(['a', 'b'], [['a', 'b']]), [], 'a chain is no cycle');
  t.equal(folderOf('storage/layer-store.ts'), 'storage');
  t.equal(folderOf('main.ts'), '.');
});
