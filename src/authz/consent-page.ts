// The consent page: names the app that asks, the agent that will act, what it
// may do in plain words (and what it may not), for how long, and where the
// browser goes next. Its two buttons are named exactly Approve and Deny.
import type { FastifyReply } from 'fastify';
import { SCOPE_DESCRIPTIONS, parseScope } from '../delegation/index.js';
import type { UserRecord } from '../store/index.js';
import type { AuthorizationRequest } from './authorize.js';
import type { AuthContext } from './context.js';
import { html, sendPage, type Html } from './pages.js';
import { isLoopbackRedirect } from './policy/redirect-uri.js';

export interface ConsentView {
  request: AuthorizationRequest;
  user: UserRecord;
  requestId: string;
  csrf: string;
}

export function renderConsent(reply: FastifyReply, ctx: AuthContext, view: ConsentView): FastifyReply {
  const { request, user } = view;
  const clientName = request.client.clientName ?? request.client.clientId;
  const agentName = request.resource.name;
  const redirect = new URL(request.redirectUri);
  const until = formatDate(ctx.now() + ctx.lifetimes.grantSec * 1000, user.timeZone);

  const abilities: Html[] = parseScope(request.scope).map((s) => html`<li>${describe(s)}</li>`);
  for (const reach of request.resource.downstream) {
    for (const s of reach.scopes) abilities.push(html`<li>${describe(s)} <span class="muted">(at ${hostOf(reach.resource)})</span></li>`);
  }

  const returnTo = isLoopbackRedirect(redirect)
    ? html`<p class="muted">The app that asked runs on this computer; you will return to it at ${redirect.host}.</p>`
    : html`<p class="warn">After you decide, you will be sent to <strong>${redirect.host}</strong>. Approve only if you expected to use that site.</p>`;

  const body = html`<h1>Allow ${agentName} to act for you?</h1>
<p><strong>${clientName}</strong> asks you to let <strong>${agentName}</strong> act on your behalf, ${user.name}.</p>
<div class="who">
<p><strong>${agentName}</strong></p>
<p class="muted">The agent at <code>${request.resource.url}</code></p>
</div>
<h2>${agentName} will be able to</h2>
<ul>${abilities}</ul>
<h2>It will not be able to</h2>
<ul><li>Create, change or delete your events</li><li>Sign in as you or see your password</li><li>Pass on more than you allow here</li></ul>
<p>This lasts until <strong>${until}</strong>, unless you revoke it sooner.</p>
${returnTo}
<form method="post" action="/consent">
<input type="hidden" name="request" value="${view.requestId}">
<input type="hidden" name="csrf" value="${view.csrf}">
<div class="actions">
<button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>`;
  return sendPage(reply, 200, `Allow ${agentName} to act for you?`, body, [redirect.origin]);
}

function describe(scope: string): string {
  return SCOPE_DESCRIPTIONS[scope] ?? `Use the permission “${scope}”`;
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function formatDate(ms: number, timeZone: string): string {
  return new Intl.DateTimeFormat('en-GB', { dateStyle: 'full', timeStyle: 'short', timeZone }).format(ms) + ` (${timeZone})`;
}
