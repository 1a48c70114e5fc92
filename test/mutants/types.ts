/**
 * One mutant for `npm run mutants` (scripts/mutants.ts): a small change to one security check in src/ that lets an
 * attack through, and the test files that must fail when it is applied.
 */
export interface Mutant {
  /** A for the authorization server, R for the resource servers, the HTTP layer and the CLI client, O for the rest; then the review's own id. */
  id: string;
  area: string;
  /** Relative to the project root. */
  file: string;
  /** The attack the check refuses, which the mutant lets through. */
  attack: string;
  /** Text found exactly once in `file`, and what it becomes. */
  from: string;
  to: string;
  /** Test files (or directories) of which at least one fails with the mutant applied. */
  tests: string[];
}
