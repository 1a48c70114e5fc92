// The Host check of every server (src/http/app.ts, hostAllowed): a loopback
// name is answered only with the port the connection arrived on. SECURITY.md's
// DNS rebinding row names "another port"; test/security/requests.test.ts tries
// it at CalendarAgent only, where the published-host check (421 naming its URL)
// refuses it a second time. Here the same Host on another port, by each
// loopback name, at the authorization server and the calendar backend (which
// answer loopback aliases of their own port: the published-host row), from
// outside against the real servers: 421 invalid_request, nothing changed; the
// control (the right port) is answered. Found by mutation (s32 M2): a Host
// check that took any port of a loopback name left every test green.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawRequest } from '../agent/http.js';
import { startStack, stateChangedBy, type Stack } from './stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.close();
});

const paths = {
  auth: ['/.well-known/oauth-authorization-server', '/authorize?client_id=x'],
  calendar: ['/.well-known/oauth-protected-resource', '/freebusy'],
} as const;

describe('a loopback name with another port in Host (DNS rebinding row, "another port")', () => {
  it.each(['auth', 'calendar'] as const)('the %s server answers its own port (the control) and refuses every other: 421 invalid_request, nothing changed', async (which) => {
    const port = stack.ports[which];
    const control = await rawRequest({ port, path: paths[which][0], headers: { Host: `127.0.0.1:${port}` } });
    expect(control.status).toBe(200);
    for (const path of paths[which]) {
      for (const host of [`127.0.0.1:${port + 1}`, `localhost:${port + 1}`, `[::1]:${port + 1}`, '127.0.0.1', 'localhost', `127.0.0.1:${port}0`]) {
        const { result, changed } = await stateChangedBy(stack, () => rawRequest({ port, path, headers: { Host: host } }));
        expect(result.status, `${which} ${path} Host ${host}`).toBe(421);
        expect(result.json(), `${which} ${path} Host ${host}`).toMatchObject({ error: 'invalid_request' });
        expect(changed).toEqual([]);
      }
    }
  });
});
