// canonicalJson, which the audit chain hashes: the same text as before it was
// made iterative (so every chain already written still verifies), for any
// depth a record can be stored at, and a clear refusal past its bound.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, MAX_CANONICAL_DEPTH, canonicalJson, recordHash, type AuditContent } from '../../src/store/audit-chain.js';

/** canonicalJson as it was written first (recursive), the reference for the text. */
function recursiveCanonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(recursiveCanonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${recursiveCanonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

describe('canonicalJson', () => {
  it.each([
    ['an object with unsorted keys at every level', { b: 1, a: { d: [3, { z: null, y: 'é\n"' }], c: true } }],
    ['undefined members and array elements', { a: undefined, b: [1, undefined, 2], c: { d: undefined } }],
    ['empty containers and scalars', { a: {}, b: [], c: '', d: 0, e: -1.5e-7, f: false }],
    ['a top-level array', [{ b: 2, a: 1 }, [[]], 'x']],
  ])('writes %s as the recursive version did', (_, value) => {
    expect(canonicalJson(value)).toBe(recursiveCanonical(value));
  });

  it('hashes a record as SHA-256(prev_hash ‖ newline ‖ canonical JSON of the record)', () => {
    const content: AuditContent = { seq: 12, at: 1_700_000_000_000, event: 'tool_call', user: 'usr_1', client: null, grant: 'grt_1', resource: 'http://x/mcp', actors: ['a', 'usr_1'], detail: { tool: 'find_slot', n: [1, { b: 2, a: 1 }] } };
    const expected = createHash('sha256').update(`${'ab'.repeat(32)}\n${recursiveCanonical(content)}`).digest('hex');
    expect(recordHash('ab'.repeat(32), content)).toBe(expected);
  });

  it('writes a value nested 9,000 deep without overflowing the stack', () => {
    const text = `{"a":${'['.repeat(9_000)}${']'.repeat(9_000)}}`;
    expect(canonicalJson(JSON.parse(text))).toBe(text);
  });

  it('refuses a value nested past its bound, and one that contains itself, with a CanonicalJsonError', () => {
    const tooDeep = JSON.parse(`${'['.repeat(MAX_CANONICAL_DEPTH + 1)}${']'.repeat(MAX_CANONICAL_DEPTH + 1)}`) as unknown;
    expect(() => canonicalJson(tooDeep)).toThrow(CanonicalJsonError);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    expect(() => canonicalJson(loop)).toThrow(/nested more than 10000 levels deep/);
  });
});
