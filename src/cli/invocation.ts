// How a person at a shell runs this delegate: the words every copy-paste hint
// starts with (`… login`, `… approve '<URL>'`). README's install
// (`npm install && npx delegate …`) puts no `delegate` on PATH, so a bare
// `delegate` in a hint failed with "command not found" (found in review,
// s27mcp finding 2). Bare `delegate` only when the first one on PATH is this
// very launcher (`npm link`, `npm install -g .`); otherwise `node` and the
// launcher's absolute path, which works from any directory (`npx delegate`
// works only in the project's directory, and elsewhere asks the registry for a
// package of that name). Computed when a hint is printed, never at start-up.
import { accessSync, constants, realpathSync, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { packageRoot, type Env } from '../config.js';

const known = new Map<string, readonly string[]>();

/**
 * The words that run this delegate from a shell with this environment's PATH: `['delegate']` when PATH's `delegate`
 * is this package's launcher and PATH's `node` the one running this, else `[node, '/abs/bin/delegate']`, node bare when PATH's `node` is the one running
 * this (`execPath`), else its absolute path. Unquoted: callers quote each word for a shell.
 */
export function delegateInvocation(env: Env, execPath: string = process.execPath): readonly string[] {
  const key = `${env.PATH ?? ''}\0${execPath}`;
  let words = known.get(key);
  if (words === undefined) {
    words = invocationFor(env.PATH ?? '', execPath);
    if (known.size < 8) known.set(key, words);
  }
  return words;
}

function invocationFor(path: string, execPath: string): readonly string[] {
  const launcher = join(packageRoot(), 'bin', 'delegate');
  const sameNode = sameFile(onPath('node', path), execPath);
  // The launcher starts with `#!/usr/bin/env node`: bare `delegate` runs under PATH's node, so only when that is this
  // one (found in review, s27rev4: with another node first on PATH, the hinted command ran under it, or failed).
  if (sameNode && sameFile(onPath('delegate', path), launcher)) return ['delegate'];
  return [sameNode ? 'node' : execPath, launcher];
}

/**
 * The file a shell runs for `name`: the first executable of that name in an absolute PATH directory. Directories
 * under node_modules are passed over: npm and npx put them in front for the command they run (a project's
 * node_modules/.bin, npx's cache), and the person's shell does not have them.
 */
function onPath(name: string, path: string): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!isAbsolute(dir) || /(?:^|[\\/])node_modules(?:[\\/]|$)/.test(dir)) continue;
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

function sameFile(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}
