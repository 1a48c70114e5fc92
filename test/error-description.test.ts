// errorDescription (src/error-description.ts): what every writer of an OAuth
// error_description sends is in RFC 6749 §5.2's character set
// (%x20-21 / %x23-5B / %x5D-7E), whatever the message held; and no more than
// the start of a value it repeats (clippedMessage), however long the value.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_ECHOED_RUN, MAX_MESSAGE, clippedMessage, errorDescription } from '../src/error-description.js';

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

// Found in review (regress21c): a 63 KB grant type came back whole in the description and in the log line.
describe('clippedMessage', () => {
  const value = 'eyJ'.repeat(21_000);
  const start = value.slice(0, MAX_ECHOED_RUN);

  it('cuts a run without white space at 200 characters, with an ellipsis (three dots on the wire); the rest of the message stays', () => {
    expect(clippedMessage(`The grant type ${value} cannot be registered.`)).toBe(`The grant type ${start}… cannot be registered.`);
    expect(errorDescription(`The grant type ${value} cannot be registered.`)).toBe(`The grant type ${start}... cannot be registered.`);
    expect(clippedMessage(`a ${value}\n${value}`)).toBe(`a ${start}…\n${start}…`);
  });

  it('cuts the whole message at 1,000 characters when its runs are short, and never leaves half a surrogate pair', () => {
    const spaced = 'eyJ '.repeat(20_000);
    expect(clippedMessage(spaced)).toBe(`${spaced.slice(0, MAX_MESSAGE)}…`);
    expect(clippedMessage(`x${'📅'.repeat(150)}`)).toBe(`x${'📅'.repeat(99)}…`);
  });

  it('leaves a message within the bounds as it is: a long URL of 200 characters, a message of 1,000', () => {
    const url = `https://client.example/${'a'.repeat(MAX_ECHOED_RUN - 23)}`;
    const message = `The client metadata document at ${url} cannot be used.`;
    expect(clippedMessage(message)).toBe(message);
    expect(errorDescription(message)).toBe(message);
    const long = 'word '.repeat(MAX_MESSAGE / 5);
    expect(clippedMessage(long)).toBe(long);
  });

  it('bounds any text: at most 1,000 characters and an ellipsis, no run longer than 200 and its ellipsis; text within them unchanged', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 3000, unit: fc.constantFrom('a', 'eyJ', ' ', '\n', '📅') }), (s) => {
        const out = clippedMessage(s);
        const kept = out.endsWith('…') ? out.slice(0, -1) : out;
        return out.length <= MAX_MESSAGE + 1 && (out === s || out.endsWith('…')) && (kept.split(/\s/).every((run) => run.length <= MAX_ECHOED_RUN + 1));
      }),
      { numRuns: 300 },
    );
  });
});
