// A small typed OAuth flow client for black-box tests: registers a client,
// plays the browser (a cookie jar, redirects followed by hand) through the
// owner's sign-in link and the consent form, and calls the token and
// revocation endpoints. Every step returns what the wire said.
import { createHash, randomBytes } from 'node:crypto';
import type { JWK } from 'jose';
import { ownerAssertion } from './authz.js';

export interface WireResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

/** Posts a form; a parameter given as a list is sent once per value. */
export async function postForm(url: string, params: Record<string, string | string[] | undefined>, headers: Record<string, string> = {}): Promise<WireResponse> {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of v === undefined ? [] : Array.isArray(v) ? v : [v]) body.append(k, one);
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body, redirect: 'manual' });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

export async function postJson(url: string, value: unknown): Promise<WireResponse> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

export async function registerPublicClient(issuer: string, redirectUris = ['http://127.0.0.1/callback'], grantTypes = ['authorization_code', 'refresh_token']): Promise<string> {
  const res = await postJson(`${issuer}/register`, {
    client_name: 'test client',
    redirect_uris: redirectUris,
    token_endpoint_auth_method: 'none',
    grant_types: grantTypes,
    response_types: ['code'],
  });
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(res.body)}`);
  return String(res.body.client_id);
}

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** A public client registered for the device authorization grant (RFC 8628) too, or for `grantTypes`. */
export function registerDeviceClient(issuer: string, grantTypes = ['authorization_code', 'refresh_token', DEVICE_CODE_GRANT]): Promise<string> {
  return registerPublicClient(issuer, undefined, grantTypes);
}

/** The CSRF token of the first form on a page. */
export function csrfOf(html: string): string {
  return /name="csrf" value="([^"]*)"/.exec(html)![1]!;
}

/** A browser: keeps cookies, does not follow redirects by itself. */
export class Browser {
  private readonly cookies = new Map<string, string>();

  async get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; location: string | null; html: string; headers: Headers }> {
    const res = await fetch(url, { headers: { ...this.cookieHeader(), ...headers }, redirect: 'manual' });
    this.keep(res);
    return { status: res.status, location: res.headers.get('location'), html: await res.text(), headers: res.headers };
  }

  async post(url: string, form: Record<string, string | string[]>, headers: Record<string, string> = {}): Promise<{ status: number; location: string | null; html: string; headers: Headers }> {
    const body = new URLSearchParams();
    for (const [k, v] of Object.entries(form)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...this.cookieHeader(), ...headers },
      body,
      redirect: 'manual',
    });
    this.keep(res);
    return { status: res.status, location: res.headers.get('location'), html: await res.text(), headers: res.headers };
  }

  /**
   * Follows redirects on the same origin; stops at the first redirect that leaves it (the client's callback).
   * The CLI's /start (src/client/loopback.ts), where a local sign-in begins, is followed on to the owner's link.
   */
  async follow(url: string): Promise<{ status: number; url: string; html: string; location: string | null }> {
    let current = url;
    for (let i = 0; i < 10; i++) {
      const res = await this.get(current);
      if (res.status < 300 || res.status >= 400 || !res.location) return { status: res.status, url: current, html: res.html, location: null };
      const next = new URL(res.location, current).href;
      const fromStart = i === 0 && new URL(current).pathname === '/start';
      if (!fromStart && new URL(next).origin !== new URL(current).origin) return { status: res.status, url: current, html: res.html, location: next };
      current = next;
    }
    throw new Error('too many redirects');
  }

  hasCookies(): boolean {
    return this.cookies.size > 0;
  }

  private cookieHeader(): Record<string, string> {
    return this.cookies.size === 0 ? {} : { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
  }

  private keep(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

export interface ConsentForm {
  request: string;
  csrf: string;
  /** The limits as the page presets them: checked calendars, selected options. */
  [field: string]: string | string[];
}

/** The value of a page's hidden form field, as a browser would send it back. */
export function hiddenField(html: string, name: string): string {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`).exec(html);
  if (!m) throw new Error(`the page has no hidden ${name} field`);
  return m[1]!;
}

/** Reads the consent form as a browser would submit it untouched: hidden fields, checked boxes, selected options. */
export function parseConsentForm(html: string): ConsentForm {
  const field = (name: string): string => {
    const m = new RegExp(`name="${name}" value="([^"]+)"`).exec(html);
    if (!m) throw new Error(`consent page has no ${name} field`);
    return m[1]!;
  };
  const form: ConsentForm = { request: field('request'), csrf: field('csrf') };
  const checked = [...html.matchAll(/<input type="checkbox" name="([^"]+)" value="([^"]*)" checked>/g)];
  for (const [, name, value] of checked) {
    const prior = form[name!];
    form[name!] = prior === undefined ? [value!] : [...(Array.isArray(prior) ? prior : [prior]), value!];
  }
  for (const [, name, options] of html.matchAll(/<select id="[^"]*" name="([^"]+)">(.*?)<\/select>/gs)) {
    const selected = /<option value="([^"]*)" selected>/.exec(options!);
    if (selected) form[name!] = selected[1]!;
  }
  return form;
}

export interface AuthorizeParams {
  clientId: string;
  redirectUri: string;
  resource?: string;
  scope?: string;
  state?: string;
  challenge?: string;
  challengeMethod?: string;
  responseType?: string;
  extra?: Record<string, string>;
}

export function authorizeUrl(issuer: string, p: AuthorizeParams): string {
  const url = new URL(`${issuer}/authorize`);
  const set = (k: string, v: string | undefined) => v !== undefined && url.searchParams.set(k, v);
  set('response_type', p.responseType ?? 'code');
  set('client_id', p.clientId);
  set('redirect_uri', p.redirectUri);
  set('resource', p.resource);
  set('scope', p.scope);
  set('state', p.state);
  set('code_challenge', p.challenge);
  set('code_challenge_method', p.challengeMethod ?? (p.challenge ? 'S256' : undefined));
  for (const [k, v] of Object.entries(p.extra ?? {})) url.searchParams.append(k, v);
  return url.href;
}

/** Signs in through the owner's link, which lands on the consent page for `authorizeHref`. */
/** Opens the owner's sign-in link to `authorizeHref`: signed for it with the owner's key, or with the assertion given (a bad one, say). */
export async function signInAndOpenConsent(browser: Browser, issuer: string, owner: JWK | string, authorizeHref: string) {
  const next = authorizeHref.slice(issuer.length);
  const assertion = typeof owner === 'string' ? owner : await ownerAssertion(owner, issuer, { next });
  const link = `${issuer}/login/owner?assertion=${encodeURIComponent(assertion)}&next=${encodeURIComponent(next)}`;
  return browser.follow(link);
}

export function callbackParams(location: string): URLSearchParams {
  return new URL(location).searchParams;
}
