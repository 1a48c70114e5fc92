// Where tests find the built CLI (dist/), which `npm test` builds before
// running vitest. Running vitest alone needs `npm run build` first.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** file:// URL of a module in dist/, e.g. builtModule('client/cache.js'). */
export function builtModule(path: string): string {
  const url = new URL(`../../dist/${path}`, import.meta.url);
  if (!existsSync(url)) throw new Error(`dist/${path} is missing: run \`npm run build\` (npm test does) before these tests`);
  return url.href;
}

/** The launcher the package installs as `delegate`. */
export const delegateBin = fileURLToPath(new URL('../../bin/delegate', import.meta.url));
