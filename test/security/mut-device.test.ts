// Mutation review s32 (M3): the device verification page (RFC 8628 §3.3) acting only on a device that is still
// pending and unexpired. A person's confirmation page opened before the device was decided (by another page, as
// "one decision per device" has it) or before it expired is posted afterwards: the code is "not valid", and nothing
// changes (no consent record made up, the device's state untouched). Kills: lookUpCode taking any status
// (src/authz/device.ts, `found.status !== 'pending'` dropped) and the user-code lookup ignoring expiry
// (src/store/sqlite.ts deviceAuthorizationByUserCode, `expires_at > ?` dropped); both survived test/authz/device.test.ts.
// Also /device/done reached again for a device already decided: 400 "already answered", nothing changed.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ownerLink, startTestAuthz, type TestAuthz } from '../support/authz.js';
import { Browser, hiddenField, parseConsentForm, postForm, registerDeviceClient } from '../support/oauth-flow.js';
import { stateChangedBy } from './stack.js';

vi.mock('node:crypto', async (original) => (await import('../support/cheap-scrypt.js')).withCheapScrypt(await original()));

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
let authz: TestAuthz;
let clock: number;

beforeEach(async () => {
  clock = Date.now();
  authz = await startTestAuthz({ now: () => clock });
});

afterEach(async () => {
  await authz.close();
});

const database = () => ({ paths: { db: join(authz.home, 'delegate.db') } });

async function startDevice(clientId: string) {
  const res = await postForm(`${authz.issuer}/device_authorization`, { client_id: clientId, resource: authz.agentUrl });
  expect(res.status).toBe(200);
  return res.body as { device_code: string; user_code: string; verification_uri_complete: string };
}

/** The owner's browser on the device's confirmation page (signed in for that code): the form's fields. */
async function confirmationPage(device: { user_code: string; verification_uri_complete: string }) {
  const browser = new Browser();
  const iatOffsetSec = Math.round((clock - Date.now()) / 1000); // signed at the server's time
  const page = await browser.follow(await ownerLink(authz, device.verification_uri_complete.slice(authz.issuer.length), { iatOffsetSec }));
  expect(page.status).toBe(200);
  return { browser, form: { user_code: device.user_code, csrf: hiddenField(page.html, 'csrf'), signin: hiddenField(page.html, 'signin') } };
}

function poll(clientId: string, deviceCode: string) {
  return postForm(`${authz.issuer}/token`, { grant_type: DEVICE_GRANT, device_code: deviceCode, client_id: clientId });
}

describe('the device confirmation acts only on a pending, unexpired device (mutation review s32 M3)', () => {
  for (const decision of ['cancel', 'continue'] as const) {
    it(`${decision} posted from a page opened before the device was approved elsewhere: "not valid", nothing changed, the device keeps its approval`, async () => {
      const clientId = await registerDeviceClient(authz.issuer);
      const device = await startDevice(clientId);
      const early = await confirmationPage(device);
      // Approved on another page of the owner's.
      const other = await confirmationPage(device);
      const consent = await other.browser.post(`${authz.issuer}/device`, { ...other.form, decision: 'continue' });
      expect(consent.status).toBe(200);
      const answer = await other.browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'approve' });
      expect(answer.status).toBe(303);
      expect((await other.browser.get(new URL(answer.location!, authz.issuer).href)).status).toBe(200);

      const { result, changed } = await stateChangedBy(database(), () => early.browser.post(`${authz.issuer}/device`, { ...early.form, decision }));
      expect(result.html).toMatch(/not valid, was used already, or has expired/);
      expect(changed).toEqual([]);
      const tokens = await poll(clientId, device.device_code);
      expect([tokens.status, typeof tokens.body.access_token]).toEqual([200, 'string']);
    });
  }

  it('cancel posted from a page opened before the device expired: "not valid", nothing changed, the device expired_token', async () => {
    const clientId = await registerDeviceClient(authz.issuer);
    const device = await startDevice(clientId);
    clock += 300_000;
    const page = await confirmationPage(device); // its session outlives the device code by five minutes
    clock += 301_000;
    const { result, changed } = await stateChangedBy(database(), () => page.browser.post(`${authz.issuer}/device`, { ...page.form, decision: 'cancel' }));
    expect(result.html).toMatch(/not valid, was used already, or has expired/);
    expect(changed).toEqual([]);
    expect((await poll(clientId, device.device_code)).body.error).toBe('expired_token');
  });

  it('/device/done reached again for a device already denied: 400 "already answered", nothing changed', async () => {
    const clientId = await registerDeviceClient(authz.issuer);
    const device = await startDevice(clientId);
    const { browser, form } = await confirmationPage(device);
    const consent = await browser.post(`${authz.issuer}/device`, { ...form, decision: 'continue' });
    const answer = await browser.post(`${authz.issuer}/consent`, { ...parseConsentForm(consent.html), decision: 'deny' });
    expect(answer.status).toBe(303);
    const done = new URL(answer.location!, authz.issuer);
    expect((await browser.get(done.href)).status).toBe(200);
    // The same answer again, now carrying a code: decides nothing.
    done.searchParams.delete('error');
    done.searchParams.delete('error_description');
    done.searchParams.set('code', 'made-up');
    const { result, changed } = await stateChangedBy(database(), () => browser.get(done.href));
    expect(result.status).toBe(400);
    expect(result.html).toMatch(/already answered/);
    expect(changed).toEqual([]);
    expect((await poll(clientId, device.device_code)).body.error).toBe('access_denied');
  });
});
