// What CalendarAgent tells a person when the token exchange is refused: only
// a subject token the authorization server will not exchange (revoked,
// expired, its delegation ended; RFC 8693 §2.2.2 says invalid_request for
// these) asks them to sign in again. invalid_request for what signing in
// does not mend, such as a chain one hop too deep, says what was refused.
import { describe, expect, it } from 'vitest';
import { explainReadFailure } from '../../src/agent/calendar-read.js';
import { TokenExchangeError } from '../../src/agent/errors.js';

const explain = (code: 'invalid_request' | 'invalid_grant', description: string) => explainReadFailure(new TokenExchangeError(code, 'refused', description), undefined);

describe('explainReadFailure for a refused token exchange', () => {
  it.each([
    'The subject token has been revoked.',
    'The subject token is not acceptable: the token has expired.',
    'The delegation behind the subject token has ended.',
  ])('invalid_request "%s" asks to sign in again', (description) => {
    expect(explain('invalid_request', description)).toBe(`The authorization server would not let CalendarAgent act on this delegation: ${description} Sign in again.`);
  });

  it('invalid_request for a chain one hop too deep says what was refused, without the advice to sign in again', () => {
    const description = 'The delegation allows at most 2 hops from the user; this exchange would be hop 3.';
    expect(explain('invalid_request', description)).toBe(`The authorization server refused CalendarAgent's request for a calendar token: ${description}`);
  });

  it('invalid_grant (an authorization server following RFC 6749 alone) still asks to sign in again', () => {
    expect(explain('invalid_grant', 'The grant has ended.')).toMatch(/Sign in again\.$/);
  });

  it('over stdio, where nobody signs in again by itself, names the command that does (review "stdio", finding 3)', () => {
    const error = new TokenExchangeError('invalid_request', 'refused', 'The subject token has been revoked.');
    const text = explainReadFailure(error, undefined, () => 'Run `delegate login` in a terminal, then ask again.');
    expect(text).toBe('The authorization server would not let CalendarAgent act on this delegation: The subject token has been revoked. Run `delegate login` in a terminal, then ask again.');
  });

  // Found in review (locations): after the calendar backend moved to another port, the refusal said only that the
  // delegation "does not reach" it, and nothing told the person that signing in again (the consent page) mends it.
  const moved = 'The delegation reaches http://127.0.0.1:8411, not http://127.0.0.1:9411, where the agent now reads the calendar: the calendar moved since it was approved.';

  it('invalid_target for a calendar that moved names the remedy, signing in again, and no bare command (this agent does not know what runs delegate where the person is)', () => {
    const text = explainReadFailure(new TokenExchangeError('invalid_target', 'refused', moved), undefined);
    expect(text).toBe(`Your delegation does not let CalendarAgent read your calendar's free/busy time: ${moved} Sign in again, from the app that asked, to approve its new address: the consent page asks for it.`);
  });

  it('over stdio, the command that signs in again for this setup', () => {
    const text = explainReadFailure(new TokenExchangeError('invalid_target', 'refused', moved), undefined, () => 'Run `delegate login --calendar-port 9411` in a terminal, then ask again.');
    expect(text).toMatch(/the calendar moved since it was approved\. Run `delegate login --calendar-port 9411` in a terminal, then ask again\.$/);
  });

  it('any other invalid_target says what was refused, without the advice (signing in again would not reach it)', () => {
    const text = explainReadFailure(new TokenExchangeError('invalid_target', 'refused', 'The delegation does not reach http://127.0.0.1:1.'), undefined);
    expect(text).toBe("Your delegation does not let CalendarAgent read your calendar's free/busy time: The delegation does not reach http://127.0.0.1:1.");
  });
});

describe('explainReadFailure for a server_error', () => {
  // Found by the s18 helpers: a full store said "…until space is freed. Try again shortly.", and trying again shortly does
  // nothing until someone frees the space. The descriptions are the AS's own (src/authz/errors.ts).
  it.each([
    "The authorization server's storage is full: it can record nothing until space is freed.",
    "The authorization server's storage is read-only: it can record nothing until it is made writable.",
  ])('whose description says the storage cannot be written ("%s") ends with it, not "Try again shortly."', (description) => {
    const text = explainReadFailure(new TokenExchangeError('server_error', 'refused', description), undefined);
    expect(text).toBe(`The authorization server could not issue a calendar token (server_error): ${description}`);
  });

  it('any other still ends with "Try again shortly."', () => {
    const text = explainReadFailure(new TokenExchangeError('server_error', 'refused', 'The server could not complete the request.'), undefined);
    expect(text).toBe('The authorization server could not issue a calendar token (server_error): The server could not complete the request. Try again shortly.');
  });
});
