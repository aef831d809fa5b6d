// The npm packages named by a list of module files or URLs (loaded-packages tests).

/** Package names (`@scope/name` or `name`), sorted; the innermost node_modules counts (a nested copy under its own name). */
export function packagesIn(files: readonly string[]): string[] {
  const names = new Set<string>();
  for (const file of files) {
    const m = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}
