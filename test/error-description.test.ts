// errorDescription (src/error-description.ts): what every writer of an OAuth
// error_description sends is in RFC 6749 §5.2's character set
// (%x20-21 / %x23-5B / %x5D-7E), whatever the message held.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorDescription } from '../src/error-description.js';

const CONFORMS = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

describe('errorDescription', () => {
  it.each([
    ['grant_types and response_types do not agree (RFC 7591 §2.1).', 'grant_types and response_types do not agree (RFC 7591 section 2.1).'],
    ['RFC 6749 §5.2', 'RFC 6749 section 5.2'],
    ['this client’s token', "this client's token"],
    ['‘single’ and “double” quotes', "'single' and 'double' quotes"],
    ['The delegation allows only the calendar "work", not "private".', "The delegation allows only the calendar 'work', not 'private'."],
    ['C:\\path\\to', 'C:/path/to'],
    ['1–64 letters — or more', '1-64 letters - or more'],
    ['A property outside BEGIN:VCALENDAR … END:VCALENDAR.', 'A property outside BEGIN:VCALENDAR ... END:VCALENDAR.'],
    ['Büro, Café, Ørsted', 'Buro, Cafe, ?rsted'],
    ['line one\nline two\ttab', 'line one line two tab'],
    ['a\u0000b\u007fc', 'a?b?c'],
    ['calendar 日本', 'calendar ??'],
    ['emoji 📅 here', 'emoji ? here'],
    ['sent ← received → done', 'sent <- received -> done'],
  ])('%j -> %j', (input, expected) => {
    expect(errorDescription(input)).toBe(expected);
    expect(errorDescription(input)).toMatch(CONFORMS);
  });

  it('leaves a description that already conforms unchanged', () => {
    const fine = "The client assertion's aud must be this server's issuer identifier, http://127.0.0.1:8410.";
    expect(errorDescription(fine)).toBe(fine);
    fc.assert(fc.property(fc.stringMatching(/^[\x20\x21\x23-\x5b\x5d-\x7e]*$/), (s) => errorDescription(s) === s));
  });

  it('always answers with the allowed characters only, for any string', () => {
    const anything = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme-composite' }));
    fc.assert(fc.property(anything, (s) => CONFORMS.test(errorDescription(s))), { numRuns: 2000 });
  });
});
