/** One challenge from a `WWW-Authenticate` header, scheme lower-cased. */
export interface AuthChallenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse `Bearer realm="https://a/token",service="reg",scope="repository:x:pull", Basic realm="r"`.
 * Quoted strings may contain commas and escaped quotes; several challenges may share one header.
 */
export function parseWwwAuthenticate(header: string | string[] | undefined): AuthChallenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const out: AuthChallenge[] = [];
  for (const value of values) parseOne(value, out);
  return out;
}

const TOKEN = /^\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)/;

function parseOne(value: string, out: AuthChallenge[]): void {
  let rest = value;
  let current: AuthChallenge | undefined;
  while (rest.trim() !== '') {
    rest = rest.replace(/^[\s,]+/, '');
    const name = TOKEN.exec(rest);
    if (!name?.[1]) return;
    rest = rest.slice(name[0].length);
    const eq = /^\s*=\s*/.exec(rest);
    if (!eq) {
      current = { scheme: name[1].toLowerCase(), params: {} };
      out.push(current);
      continue;
    }
    rest = rest.slice(eq[0].length);
    const [val, after] = readValue(rest);
    rest = after;
    if (current) current.params[name[1].toLowerCase()] = val;
  }
}

function readValue(s: string): [string, string] {
  if (!s.startsWith('"')) {
    const m = /^[^,\s]*/.exec(s);
    const v = m?.[0] ?? '';
    return [v, s.slice(v.length)];
  }
  let v = '';
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) v += s[++i];
    else if (c === '"') return [v, s.slice(i + 1)];
    else v += c;
  }
  return [v, ''];
}
