// The session cookie's attributes on the wire, for both ways of signing in:
// the owner's one-time link (/login/owner) and a named account's password
// (/login). A page of another site may make the browser send requests to
// loopback (SECURITY.md, "A malicious web page"), and any script the AS's
// origin ever ran could read a cookie without HttpOnly: the session cookie is
// `HttpOnly; SameSite=Lax; Path=/`, no Domain, and the sign-in form's CSRF
// cookie `HttpOnly; SameSite=Strict`. Written for the mutation review (s32
// M1): dropping HttpOnly or SameSite=Lax from src/authz/session.ts left every
// other test green.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addUser } from '../../src/authz/index.js';
import { Browser, authorizeUrl, pkcePair, registerPublicClient } from '../support/oauth-flow.js';
import { ownerLink } from '../support/authz.js';
import { REDIRECT, startStack, type Stack } from './stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
  await addUser(stack.store, { name: 'nina', password: 'correct horse battery staple', timeZone: 'UTC' }, Date.now());
});
afterAll(async () => stack?.close());

/** The attributes of a Set-Cookie line, lower-cased names (`httponly`, `samesite`, `path`, `domain`…), and its cookie's name. */
function attributesOf(line: string): { name: string; attrs: Map<string, string> } {
  const [pair, ...rest] = line.split(';').map((s) => s.trim());
  const attrs = new Map(rest.map((a) => {
    const eq = a.indexOf('=');
    return eq === -1 ? [a.toLowerCase(), ''] : [a.slice(0, eq).toLowerCase(), a.slice(eq + 1)];
  }));
  return { name: pair!.slice(0, pair!.indexOf('=')), attrs };
}

/** A session cookie as set at sign-in on a loopback (http) issuer. */
function expectSessionCookie(lines: string[]): void {
  const session = lines.map(attributesOf).find((c) => c.name === `delegate_session_${stack.ports.auth}`);
  expect(session, lines.join('\n')).toBeDefined();
  expect(session!.attrs.has('httponly'), 'HttpOnly').toBe(true);
  expect(session!.attrs.get('samesite')?.toLowerCase(), 'SameSite').toBe('lax');
  expect(session!.attrs.get('path')).toBe('/');
  expect(session!.attrs.has('domain')).toBe(false);
}

describe('the session cookie a sign-in sets', () => {
  it('by the owner’s link (/login/owner): HttpOnly, SameSite=Lax, Path=/, no Domain', async () => {
    const clientId = await registerPublicClient(stack.issuer, [REDIRECT]);
    const request = authorizeUrl(stack.issuer, { clientId, redirectUri: REDIRECT, resource: stack.agentUrl, scope: 'slots:find', state: 's', challenge: pkcePair().challenge });
    const signedIn = await new Browser().get(await ownerLink(stack, request.slice(stack.issuer.length)));
    expect(signedIn.status).toBe(303);
    expectSessionCookie(signedIn.headers.getSetCookie());
  });

  it('by a password (/login): HttpOnly, SameSite=Lax, Path=/, no Domain; the form’s own CSRF cookie HttpOnly, SameSite=Strict', async () => {
    const browser = new Browser();
    const form = await browser.get(`${stack.issuer}/login?next=%2Fgrants`);
    expect(form.status).toBe(200);
    const loginCookie = form.headers.getSetCookie().map(attributesOf).find((c) => c.name === `delegate_session_${stack.ports.auth}_login`);
    expect(loginCookie, form.headers.getSetCookie().join('\n')).toBeDefined();
    expect(loginCookie!.attrs.has('httponly')).toBe(true);
    expect(loginCookie!.attrs.get('samesite')?.toLowerCase()).toBe('strict');
    const field = (name: string) => new RegExp(`name="${name}" value="([^"]*)"`).exec(form.html)?.[1] ?? '';
    const signedIn = await browser.post(`${stack.issuer}/login`, { csrf: field('csrf'), next: field('next').replace(/&amp;/g, '&'), username: 'nina', password: 'correct horse battery staple' }, { origin: stack.issuer });
    expect(signedIn.status, signedIn.html).toBe(303);
    expectSessionCookie(signedIn.headers.getSetCookie());
  });
});
