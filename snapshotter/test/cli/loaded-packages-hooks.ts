// Module hooks for loaded-packages-child.ts: every ES module Node loads is appended to a file
// before it runs, so the list is complete when the child reports (CommonJS modules are in
// require.cache instead).
import { appendFileSync } from 'node:fs';

let file = '';

/** Called by module.register with the file to append to. */
export function initialize(data: { file: string }): void {
  file = data.file;
}

type Next = (url: string, context: unknown) => Promise<unknown>;

/** Record the URL of each module loaded, then load it as Node would. */
export async function load(url: string, context: unknown, next: Next): Promise<unknown> {
  appendFileSync(file, `${url}\n`);
  return next(url, context);
}
