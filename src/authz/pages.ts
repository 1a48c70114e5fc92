// HTML pages of the authorization server (sign-in help, consent, errors):
// every value escaped, one inline stylesheet allowed by its hash, no script,
// framing refused (CSP frame-ancestors and X-Frame-Options), never cached.
import { createHash } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { noteRefusal } from '../http/refusal-log.js';

const STYLE = `
:root { color-scheme: light dark; --fg: #1d2330; --muted: #5b6475; --bg: #f6f7f9; --card: #fff; --line: #dfe3ea; --accent: #1f6feb; --warn: #9a6700; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6e9ef; --muted: #a3abba; --bg: #12151b; --card: #1b2029; --line: #2d3441; --accent: #4c8dff; --warn: #e3b341; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 34rem; margin: 3rem auto; padding: 2rem; background: var(--card); border: 1px solid var(--line); border-radius: 12px; }
h1 { font-size: 1.35rem; line-height: 1.3; margin: 0 0 1rem; }
h2 { font-size: 1rem; margin: 1.5rem 0 .5rem; }
p { margin: .5rem 0; }
ul { margin: .25rem 0 0; padding-left: 1.25rem; }
li { margin: .35rem 0; }
.muted { color: var(--muted); font-size: .9rem; }
.who { padding: .75rem 1rem; border: 1px solid var(--line); border-radius: 8px; margin: 1rem 0; }
.verified { color: #1a7f37; font-weight: 600; }
.warn { color: var(--warn); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; padding: .5rem .75rem; border: 1px solid var(--line); border-radius: 6px; }
.actions { display: flex; gap: .75rem; margin-top: 1.75rem; }
button { font: inherit; padding: .6rem 1.4rem; border-radius: 8px; border: 1px solid var(--line); background: var(--card); color: var(--fg); cursor: pointer; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; }
label { display: block; margin: .75rem 0 .25rem; }
fieldset { border: 1px solid var(--line); border-radius: 8px; padding: .25rem 1rem .75rem; margin: .75rem 0; }
legend { padding: 0 .25rem; }
fieldset label { display: inline-block; margin: .5rem 1.25rem 0 0; }
fieldset label.apart { display: block; margin-top: .75rem; padding-top: .5rem; border-top: 1px solid var(--line); }
select { font: inherit; width: 100%; padding: .45rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
input[type=text], input[type=password] { font: inherit; width: 100%; padding: .5rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); color: var(--fg); }
`;

const STYLE_HASH = `'sha256-${createHash('sha256').update(STYLE, 'utf8').digest('base64')}'`;

/** A moment as pages show it to a user, in their time zone: `4 Dec 2026, 19:58`. */
export function pageTime(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(ms);
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Tagged template that escapes every interpolated value unless it is already `Html`. */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1]!;
  });
  return new Html(out);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

/**
 * Sends a page. `formActions` lists the origins a form on the page may submit
 * to or be redirected to after submission (Chromium applies form-action to the
 * redirect after a POST, so the client's redirect origin must be listed).
 */
export function sendPage(reply: FastifyReply, status: number, title: string, body: Html, formActions: readonly string[] = []): FastifyReply {
  const csp = [
    "default-src 'none'",
    `style-src ${STYLE_HASH}`,
    "img-src 'none'",
    `form-action 'self'${formActions.map((o) => ` ${o}`).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>${new Html(STYLE)}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
  return reply
    .code(status)
    .header('Content-Security-Policy', csp)
    .header('X-Frame-Options', 'DENY')
    // Not no-referrer: under that policy a browser sends `Origin: null` with the
    // consent form, and the same-origin check on /consent could not pass.
    .header('Referrer-Policy', 'same-origin')
    .header('Cache-Control', 'no-store')
    .header('Pragma', 'no-cache')
    .type('text/html; charset=utf-8')
    .send(doc.value);
}

/** An error shown in the browser when the client's redirect URI cannot be trusted (RFC 6749 §4.1.2.1). */
export function sendErrorPage(reply: FastifyReply, status: number, heading: string, detail: string): FastifyReply {
  notePageRefusal(reply, status, `${heading}: ${detail}`);
  return sendPage(
    reply,
    status,
    heading,
    html`<h1>${heading}</h1>
<p>${detail}</p>
<p class="muted">Nothing was shared. You can close this window and try again from the app that sent you here.</p>`,
  );
}

/**
 * A page's refusal on the access line, as the JSON refusals' (noteRefusal): a page has no RFC error code, so the one
 * RFC 6749 §4.1.2.1 gives its status (the one a redirect from /authorize would carry), and what the page says as the reason.
 */
export function notePageRefusal(reply: FastifyReply, status: number, says: string): void {
  const error = status === 403 ? 'access_denied' : status === 404 ? 'not_found' : status === 429 || status === 503 ? 'temporarily_unavailable' : status >= 500 ? 'server_error' : 'invalid_request';
  noteRefusal(reply.request, error, says);
}

/**
 * The page for a request whose account `delegate users remove` retired while the request was on its way (the store
 * refused what it would have attached to the account: AccountRemovedError). Found in review (s26): a JSON 500.
 */
export function sendAccountRemovedPage(reply: FastifyReply): FastifyReply {
  return sendErrorPage(reply, 400, 'This account was removed', 'It was removed while this request was on its way: nothing was added to it.');
}
