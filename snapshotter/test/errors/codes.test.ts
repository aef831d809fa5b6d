// The README's error table and the code list (errors/codes.ts) say the same thing: every code is
// documented with its kind, and no row (there or in a folder README's table) names a code that
// does not exist.
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CLIP_ERROR_KINDS, type ClipErrorCode } from '../../src/errors/index.js';

// build/snapshotter/test/errors/ → the repository root (the sources, not the build).
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CODE_CELL = /^\|\s*`(CLIP_[A-Z0-9_]+)`\s*\|\s*([a-z_]+)\s*\|/;

/** Rows of markdown tables whose first cell is one backquoted code: code → second cell. */
function tableRows(markdown: string): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of markdown.split('\n')) {
    const m = CODE_CELL.exec(line);
    if (m) rows.set(m[1]!, m[2]!);
  }
  return rows;
}

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const section = readme.slice(readme.indexOf('\n## Errors\n'), readme.indexOf('\n## ', readme.indexOf('\n## Errors\n') + 1));
const documented = tableRows(section);
const codes = Object.keys(CLIP_ERROR_KINDS) as ClipErrorCode[];

t.test('the README error table is there', async (t) => {
  t.ok(section.length > 0 && documented.size > 100, `${documented.size} rows`);
});

t.test('every code is in the README error table, with its kind', async (t) => {
  t.same(codes.filter((c) => !documented.has(c)), [], 'undocumented codes');
  t.same(codes.filter((c) => documented.has(c) && documented.get(c) !== CLIP_ERROR_KINDS[c]).map((c) => `${c}: ${documented.get(c)}`), [], 'kinds that differ');
});

t.test('every code a README table lists exists', async (t) => {
  t.same([...documented.keys()].filter((c) => !(c in CLIP_ERROR_KINDS)), [], 'the error table');
  t.same([...tableRows(readme).keys()].filter((c) => !(c in CLIP_ERROR_KINDS)), [], 'any other table of the README');
});

t.test('folder READMEs name only codes that exist', async (t) => {
  const stale: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name === 'README.md') for (const c of tableRows(readFileSync(join(dir, e.name), 'utf8')).keys()) if (!(c in CLIP_ERROR_KINDS)) stale.push(`${e.name} in ${dir}: ${c}`);
    }
  };
  walk(join(ROOT, 'snapshotter', 'src'));
  t.same(stale, []);
});

t.test('the table check can fail', async (t) => {
  const rows = tableRows('| `CLIP_A` | not_found | x |\n| `CLIP_B`, `CLIP_C` | unavailable | y |\ntext `CLIP_D`\n');
  t.same([...rows], [['CLIP_A', 'not_found']], 'only single-code rows are read');
});
