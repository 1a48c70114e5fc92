// A stored time zone this computer does not know (a database moved from
// another machine, an older time zone database), at the calendar backend the
// CLI runs (src/cli/calendar-backend.ts behind real HTTP): 500
// invalid_configuration whose description names a mend that works for the
// account. Found in review (s15rest): every account was told to set
// 'timeZone' in the owner's config.json, which a named account (server mode)
// never reads. Now the owner is told config.json, and a named account the
// command that changes its stored zone.
import { fileURLToPath } from 'node:url';
import { SignJWT, decodeJwt, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/users.js';
import { rawRequest } from '../agent/http.js';
import { exchangeAsAgent, issuerSigningKey, startStack, stateChangedBy, userTokens, type Stack } from '../security/stack.js';

const HOUR = 3_600_000;
const UNKNOWN = 'Mars/Olympus_Mons';

let stack: Stack;
/** A calendar token for the owner, as CalendarAgent gets it by exchange. */
let ownerCalendarToken: string;

beforeAll(async () => {
  stack = await startStack();
  const user = await userTokens(stack);
  const exchanged = await exchangeAsAgent(stack, user.accessToken);
  if (exchanged.status !== 200) throw new Error(`exchange: ${JSON.stringify(exchanged.body)}`);
  ownerCalendarToken = String(exchanged.body.access_token);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

/** The owner's calendar token with only `sub` changed, signed with the AS's own key. */
async function calendarTokenFor(sub: string): Promise<string> {
  const { kid, privateJwk } = await issuerSigningKey(stack);
  return new SignJWT({ ...decodeJwt(ownerCalendarToken), sub, jti: `at_${crypto.randomUUID()}` })
    .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid })
    .sign((await importJWK(privateJwk, 'ES256')) as CryptoKey);
}

const atCalendar = (token: string) => {
  const now = Date.now();
  const query = `from=${encodeURIComponent(new Date(now + HOUR).toISOString())}&to=${encodeURIComponent(new Date(now + 24 * HOUR).toISOString())}`;
  return rawRequest({ port: stack.ports.calendar, path: `/freebusy?${query}`, headers: { authorization: `Bearer ${token}` } });
};

describe('a stored time zone this computer does not know', () => {
  it('a named account: 500 invalid_configuration naming the command that sets its zone, not config.json; nothing changed', async () => {
    const bob = await addUser(stack.store, { name: 'bob', password: 'bob has a long password', timeZone: 'UTC' }, Date.now());
    await stack.store.addCalendar({ id: 'cal_bob', userId: bob.id, name: 'work', kind: 'file', source: fileURLToPath(new URL('../../fixtures/owner.ics', import.meta.url)), createdAt: Date.now() });
    const token = await calendarTokenFor(bob.id);
    expect((await atCalendar(token)).status).toBe(200); // the control: the same token with a zone this computer knows
    await stack.store.updateUser(bob.id, { timeZone: UNKNOWN });
    const { result: res, changed } = await stateChangedBy(stack, () => atCalendar(token));
    expect(res.status).toBe(500);
    const body = res.json() as { error: string; error_description: string };
    expect(body.error).toBe('invalid_configuration');
    expect(body.error_description).toContain(`time zone '${UNKNOWN}' is not one this computer knows`);
    expect(body.error_description).not.toMatch(/config\.json/);
    expect(body.error_description).toContain('`delegate users set-time-zone bob ZONE`');
    expect(body.error_description).not.toMatch(/password/);
    expect(changed).toEqual([]);
  });

  it('the owner (no timeZone in config.json): the description names config.json', async () => {
    const owner = (await stack.store.ownerUser())!;
    await stack.store.updateUser(owner.id, { timeZone: UNKNOWN });
    try {
      const res = await atCalendar(await calendarTokenFor(owner.id));
      expect(res.status).toBe(500);
      const body = res.json() as { error: string; error_description: string };
      expect(body.error).toBe('invalid_configuration');
      expect(body.error_description).toMatch(/time zone 'Mars\/Olympus_Mons' is not one this computer knows; set 'timeZone' in the owner's config\.json/);
      expect(body.error_description).not.toMatch(/users (add|set-time-zone)/);
    } finally {
      await stack.store.updateUser(owner.id, { timeZone: owner.timeZone });
    }
  });
});
