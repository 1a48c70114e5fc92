// Scopes of the delegate resources, what they mean in plain words, and the
// set operations that attenuation is built on. Pure: no I/O.
import { lookupTable } from '../lookup-table.js';

/** Ask CalendarAgent to find free time (audience: the agent's /mcp URL). */
export const SCOPE_FIND_SLOT = 'slots:find';
/** Read busy intervals only, never event details (audience: the calendar backend). */
export const SCOPE_FREEBUSY_READ = 'freebusy:read';
/** Ask CalendarAgent for the busy times of a window, without details (audience: the agent's /mcp URL). */
export const SCOPE_BUSY_READ = 'busy:read';

/** What each scope lets the holder do, in words for the consent page. */
export const SCOPE_DESCRIPTIONS = lookupTable<string>({
  // Free time is busy time's complement: an app that searches all day, minute by minute, learns when you are busy
  // (found in review, s34privacy). Said here, so that busy:read is not taken for what keeps that hidden.
  [SCOPE_FIND_SLOT]: 'Find free time in your calendar (the free times found show when you are busy)',
  [SCOPE_FREEBUSY_READ]: 'See when you are busy, but not what your events are (no titles, places or people)',
  [SCOPE_BUSY_READ]: 'List the times you are busy, without saying what your events are (no titles, places or people)',
});

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** isValidScopeToken in words, for whoever names a scope (an administrator registering an agent's). */
export const SCOPE_TOKEN_WORDS = 'a scope is one word of printable ASCII without spaces, double quotes or backslashes, such as agenda:write (RFC 6749 section 3.3).';

export function isValidScopeToken(token: string): boolean {
  return SCOPE_TOKEN.test(token);
}

/**
 * RFC 6749 §3.3: scope = scope-token *( SP scope-token ). Not a value of spaces only, a leading, trailing or doubled
 * space, a tab or a character outside scope-token.
 */
export function isWellFormedScope(scope: string): boolean {
  return scope.split(' ').every(isValidScopeToken);
}

/** Splits a scope string into its distinct tokens, in order; undefined or empty gives []. */
export function parseScope(scope: string | undefined | null): string[] {
  if (!scope) return [];
  const out: string[] = [];
  for (const token of scope.split(' ')) {
    if (token !== '' && !out.includes(token)) out.push(token);
  }
  return out;
}

export function formatScope(scopes: readonly string[]): string {
  return [...new Set(scopes)].join(' ');
}

/** Whether every element of `inner` is in `outer`. */
export function isSubset(inner: readonly string[], outer: readonly string[]): boolean {
  const set = new Set(outer);
  return inner.every((s) => set.has(s));
}

export function missingFrom(required: readonly string[], held: readonly string[]): string[] {
  const set = new Set(held);
  return required.filter((s) => !set.has(s));
}
