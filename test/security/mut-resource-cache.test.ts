// The resource servers' memo of verified tokens (src/resource/bearer.ts,
// `verified`) must be keyed by the whole token: header, payload and signature.
// A memo keyed by less would let a token that was once accepted vouch for a
// forged one carrying the same claims: a signature stripped or replaced, or a
// header swapped for `alg: none`, presented right after the real token was
// used. Attacked from outside against the real servers (test/security/stack.ts):
// the real token is accepted (the control, and what fills the memo), then each
// forgery is refused 401 invalid_token with nothing changed in the database.
// Found by mutation (s32 M2): a memo keyed by the payload alone, or by the
// payload and signature without the header, left every test green.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64url } from 'jose';
import { atAgent, atCalendar, expectInvalidToken, startStack, stateChangedBy, userAndCalendarToken, type Stack } from './stack.js';

let stack: Stack;
let userToken: string;
let calendarToken: string;

beforeAll(async () => {
  stack = await startStack();
  const tokens = await userAndCalendarToken(stack);
  userToken = tokens.user.accessToken;
  calendarToken = tokens.calendarToken;
});

afterAll(async () => {
  await stack?.close();
});

const parts = (token: string) => {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  return { header, payload, signature };
};

/** The same claims with a signature that is not the AS's: the real one with its bytes changed, or none at all. */
const forgeries: Array<[string, (token: string) => string]> = [
  [
    'another signature (the real one with its first bytes flipped)',
    (token) => {
      const { header, payload, signature } = parts(token);
      const bytes = Buffer.from(signature, 'base64url');
      for (let i = 0; i < 8; i++) bytes[i] = bytes[i]! ^ 0xff;
      return `${header}.${payload}.${bytes.toString('base64url')}`;
    },
  ],
  ['a signature of zeros', (token) => `${parts(token).header}.${parts(token).payload}.${Buffer.alloc(64).toString('base64url')}`],
  [
    'the real signature under an alg: none header',
    (token) => {
      const { payload, signature } = parts(token);
      const none = base64url.encode(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: JSON.parse(Buffer.from(parts(token).header, 'base64url').toString()).kid }));
      return `${none}.${payload}.${signature}`;
    },
  ],
  [
    'the real signature under an HS256 header',
    (token) => {
      const { payload, signature } = parts(token);
      const hs = base64url.encode(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: JSON.parse(Buffer.from(parts(token).header, 'base64url').toString()).kid }));
      return `${hs}.${payload}.${signature}`;
    },
  ],
];

describe('a verified token vouches only for itself, not for a forgery with its claims', () => {
  it.each(forgeries)('at CalendarAgent (/mcp): %s, sent right after the real token was accepted: 401 invalid_token, nothing changed', async (_name, forge) => {
    expect((await atAgent(stack, userToken)).status).toBe(200);
    const forged = forge(userToken);
    expect(forged).not.toBe(userToken);
    const { result, changed } = await stateChangedBy(stack, () => atAgent(stack, forged));
    expectInvalidToken(result, 'CalendarAgent');
    expect(changed).toEqual([]);
    // The real token is still good: the forgery changed nothing for its holder.
    expect((await atAgent(stack, userToken)).status).toBe(200);
  });

  it.each(forgeries)('at the calendar backend (/freebusy): %s, sent right after the real token was accepted: 401 invalid_token, nothing read or changed', async (_name, forge) => {
    expect((await atCalendar(stack, calendarToken)).status).toBe(200);
    const forged = forge(calendarToken);
    expect(forged).not.toBe(calendarToken);
    const { result, changed } = await stateChangedBy(stack, () => atCalendar(stack, forged));
    expectInvalidToken(result, 'calendar backend');
    expect(changed).toEqual([]);
  });
});
