/**
 * containerd's filter language for List: `fieldpath [op value] {, selector}`, operators `==`, `!=`,
 * `~=` (regular expression), a bare field path meaning "present". Selectors joined by `,` must all
 * match; separate filter strings are alternatives. Field path parts and values may be quoted with
 * `"…"` (Go escapes) or, for values, `/…/`.
 */
import { invalidArgument } from '../errors/index.js';
import { Kind, type SnapshotInfo } from './types.js';

type Operator = 'present' | '==' | '!=' | '~=';
interface Selector {
  path: string[];
  op: Operator;
  value: string;
  re?: RegExp;
}
/** A parsed filter: any one of the alternatives must match. */
export type Filter = (info: SnapshotInfo) => boolean;

const KIND_NAMES: Record<Kind, string> = { [Kind.View]: 'view', [Kind.Active]: 'active', [Kind.Committed]: 'committed' };

/** Parse List's repeated `filters` field; no filters (or only empty ones) match everything. */
export function parseFilters(filters: readonly string[]): Filter {
  const alternatives = filters.filter((f) => f.trim() !== '').map(parseOne);
  if (alternatives.length === 0) return () => true;
  return (info) => alternatives.some((sels) => sels.every((s) => matches(s, info)));
}

function parseOne(src: string): Selector[] {
  const p = new Scanner(src);
  const out: Selector[] = [];
  for (;;) {
    out.push(p.selector());
    p.skipSpace();
    if (p.done()) return out;
    p.expect(',');
  }
}

class Scanner {
  #src: string;
  #pos = 0;
  constructor(src: string) {
    this.#src = src;
  }
  done(): boolean {
    return this.#pos >= this.#src.length;
  }
  skipSpace(): void {
    while (!this.done() && /\s/.test(this.#src[this.#pos]!)) this.#pos++;
  }
  fail(what: string): never {
    throw invalidArgument('CLIP_FILTER_SYNTAX', `filter ${JSON.stringify(this.#src)}: ${what} at position ${this.#pos}`);
  }
  expect(ch: string): void {
    this.skipSpace();
    if (this.#src[this.#pos] !== ch) this.fail(`expected "${ch}"`);
    this.#pos++;
  }
  selector(): Selector {
    const path = [this.field()];
    while (this.#src[this.#pos] === '.') {
      this.#pos++;
      path.push(this.field());
    }
    this.skipSpace();
    const op = this.operator();
    if (op === 'present') return { path, op, value: '' };
    this.skipSpace();
    const value = this.value();
    if (op !== '~=') return { path, op, value };
    try {
      return { path, op, value, re: new RegExp(value) };
    } catch {
      return this.fail(`invalid regular expression ${JSON.stringify(value)}`);
    }
  }
  field(): string {
    this.skipSpace();
    if (this.#src[this.#pos] === '"') return this.quoted('"');
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.#src.slice(this.#pos));
    if (!m) this.fail('expected a field name');
    this.#pos += m[0].length;
    return m[0];
  }
  operator(): Operator {
    const two = this.#src.slice(this.#pos, this.#pos + 2);
    if (two === '==' || two === '!=' || two === '~=') {
      this.#pos += 2;
      return two;
    }
    if (this.done() || this.#src[this.#pos] === ',') return 'present';
    return this.fail('expected an operator (==, != or ~=)');
  }
  value(): string {
    const ch = this.#src[this.#pos];
    if (ch === '"' || ch === '/') return this.quoted(ch);
    const m = /^[^\s,"]+/.exec(this.#src.slice(this.#pos));
    if (!m) this.fail('expected a value');
    this.#pos += m[0].length;
    return m[0];
  }
  quoted(q: string): string {
    let out = '';
    this.#pos++;
    while (!this.done()) {
      const ch = this.#src[this.#pos++]!;
      if (ch === q) return out;
      if (ch !== '\\') {
        out += ch;
        continue;
      }
      if (this.done()) break;
      const esc = this.#src[this.#pos++]!;
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', '/': '/' };
      const mapped = simple[esc];
      // Inside /regex/ an unknown escape belongs to the regex itself.
      out += mapped !== undefined ? (q === '/' && esc !== '/' ? `\\${esc}` : mapped) : q === '/' ? `\\${esc}` : this.fail(`bad escape \\${esc}`);
    }
    return this.fail('unterminated quoted string');
  }
}

function fieldOf(path: readonly string[], info: SnapshotInfo): string | undefined {
  const [head, ...rest] = path;
  switch (head) {
    case 'name':
      return rest.length === 0 ? info.name : undefined;
    case 'parent':
      // Always present, as in containerd's adaptor: `parent==""` selects snapshots without one.
      return rest.length === 0 ? info.parent : undefined;
    case 'kind':
      return rest.length === 0 ? KIND_NAMES[info.kind] : undefined;
    case 'labels':
      return rest.length === 0 ? undefined : info.labels[rest.join('.')];
    default:
      return undefined;
  }
}

function matches(s: Selector, info: SnapshotInfo): boolean {
  const v = fieldOf(s.path, info);
  switch (s.op) {
    case 'present':
      return v !== undefined;
    case '==':
      return v !== undefined && v === s.value;
    case '!=':
      // containerd compares an absent field as the empty string here.
      return (v ?? '') !== s.value;
    case '~=':
      return v !== undefined && s.re!.test(v);
    default: {
      const never: never = s.op;
      return never;
    }
  }
}
