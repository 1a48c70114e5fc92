// The mutants of `npm run mutants` (scripts/mutants.ts) stay true to the code, so that a change to a check cannot
// quietly leave its mutant behind: each one's text is in its file exactly once, its mutation changes it, its tests
// exist, and no two share an id. (Whether each is killed is `npm run mutants`'s to say: about 35 minutes, not here.)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../src/config.js';
import { ALL_MUTANTS } from './index.js';

describe('the mutants of npm run mutants', () => {
  it('have ids of their own', () => {
    const ids = ALL_MUTANTS.map((m) => m.id);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
  });

  it.each(ALL_MUTANTS.map((m) => [m.id, m] as const))('%s: its text is in its file exactly once, the mutation changes it, and its tests exist', (_id, m) => {
    const text = readFileSync(join(packageRoot(), m.file), 'utf8');
    expect(text.split(m.from).length - 1, `${m.file} holds the text of ${m.id} ${text.split(m.from).length - 1} times`).toBe(1);
    expect(m.to).not.toBe(m.from);
    expect(m.tests.length).toBeGreaterThan(0);
    for (const test of m.tests) expect(existsSync(join(packageRoot(), test)), test).toBe(true);
  });
});
