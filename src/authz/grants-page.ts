// The signed-in user's delegations at GET /grants?signin=…: who may act for
// them, through which app, with what limits, until when, and a Revoke button
// for each (POST /grants/revoke, protected by the session's CSRF token and
// carrying the sign-in value). Revoking ends every token derived from the
// grant, everywhere. A session is good for the one page its password sign-in
// led to (see bound-pages.ts), so a cookie taken or planted through another
// port of this host opens none. POST /logout ends the session, with the same
// protection.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { SCOPE_DESCRIPTIONS, parseScope, type CalendarDetail } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord, GrantRecord, UserRecord } from '../store/index.js';
import { appName } from './app-name.js';
import { crossSiteRefusal } from './consent.js';
import { placeNamer } from './consent-page.js';
import type { AuthContext } from './context.js';
import { constantTimeEqual } from './crypto.js';
import { grantDetails } from './grant-policy.js';
import { html, pageTime, sendErrorPage, sendPage, type Html } from './pages.js';
import { GRANTS_PATH, readSignIn, withSignIn } from './bound-pages.js';
import { queryParams } from './params.js';
import { documentHost } from './policy/client-id-url.js';
import { redirectDestination } from './policy/redirect-uri.js';
import { clearSessionCookie, currentSession } from './session.js';
import { renderSignIn } from './sign-in-page.js';

export function registerGrantsPage(app: FastifyInstance, ctx: AuthContext): void {
  app.get(GRANTS_PATH, async (req, reply) => {
    const signIn = readSignIn(queryParams(req.url).signin);
    const signedIn = signIn && (await currentSession(req, ctx.store, ctx.cookieName, ctx.now(), { request: withSignIn(GRANTS_PATH, signIn) }));
    if (!signIn || !signedIn) return renderSignIn(reply, ctx, GRANTS_PATH);
    return showGrants(reply, ctx, signedIn.user, signedIn.csrf, signIn);
  });

  app.post('/grants/revoke', async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return sendErrorPage(reply, 403, 'This request did not come from your grants page', refusal);
    const now = ctx.now();
    const form = (req.body ?? {}) as FormBody;
    // The sign-in value of the page the form was on: the session's own, which a cookie taken through another port comes without.
    const signIn = readSignIn(form.signin);
    const signedIn = signIn && (await currentSession(req, ctx.store, ctx.cookieName, now, { request: withSignIn(GRANTS_PATH, signIn) }));
    const csrf = typeof form.csrf === 'string' ? form.csrf : '';
    if (!signIn || !signedIn || !constantTimeEqual(csrf, signedIn.csrf)) {
      return sendErrorPage(reply, 403, 'This request did not come from your grants page', 'Its security token does not match.');
    }
    const grant = typeof form.grant === 'string' ? await ctx.store.grantById(form.grant) : undefined;
    // Someone else's grant is answered like a missing one.
    if (!grant || grant.userId !== signedIn.user.id) return sendErrorPage(reply, 404, 'No such delegation', 'It may have been revoked already.');
    // The record is written in the revocation's transaction: both happen, or neither (and the grant stays listed).
    await ctx.store.revokeGrant(grant.id, now, 'revoked by the user', {
      event: 'grant_revoked',
      user: signedIn.user.id,
      client: grant.clientId,
      grant: grant.id,
      resource: grant.resource,
      detail: { by: 'user', via: 'grants page' },
    });
    return reply.code(303).header('Cache-Control', 'no-store').header('Location', withSignIn(GRANTS_PATH, signIn)).send();
  });

  app.post('/logout', async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return sendErrorPage(reply, 403, 'This request did not come from this server’s pages', refusal);
    const signedIn = await currentSession(req, ctx.store, ctx.cookieName, ctx.now(), { anyBound: true });
    const form = (req.body ?? {}) as FormBody;
    if (!signedIn || typeof form.csrf !== 'string' || !constantTimeEqual(form.csrf, signedIn.csrf)) {
      return sendErrorPage(reply, 403, 'This request did not come from this server’s pages', 'Its security token does not match.');
    }
    await ctx.store.deleteSession(signedIn.session.idHash);
    clearSessionCookie(reply, ctx.cookieName, ctx.secureCookies);
    return sendPage(reply, 200, 'Signed out', html`<h1>Signed out</h1><p>You can close this window.</p>`);
  });
}

async function showGrants(reply: FastifyReply, ctx: AuthContext, user: UserRecord, csrf: string, signIn: string): Promise<FastifyReply> {
  const now = ctx.now();
  const grants = (await ctx.store.listGrants(user.id)).filter((g) => g.revokedAt === null && g.expiresAt > now);
  const rows = await Promise.all(grants.map((g) => grantRow(ctx, g, { csrf, signIn }, user.timeZone)));
  const body = html`<h1>Who may act for you</h1>
<p>Signed in as <strong>${user.name}</strong>.</p>
${rows.length === 0 ? html`<p class="muted">No agent may act for you right now.</p>` : rows}
<form method="post" action="/logout"><input type="hidden" name="csrf" value="${csrf}"><div class="actions"><button type="submit">Sign out</button></div></form>`;
  return sendPage(reply, 200, 'Who may act for you', body);
}

async function grantRow(ctx: AuthContext, grant: GrantRecord, form: { csrf: string; signIn: string }, timeZone: string) {
  const client = await ctx.store.clientById(grant.clientId);
  const resource = await ctx.store.resourceByUrl(grant.resource);
  const details = grantDetails(grant);
  // Each entry with its place when there are several (RFC 9396: each allows its own limits there); one alone, as before.
  // Checked for the s25 brief (what every entry allows): listed without their places, two places' entries read as
  // conflicting limits of one, or as the same line twice.
  const placeName = placeNamer(details.flatMap((d) => d.locations));
  const at = (d: CalendarDetail) => (details.length > 1 ? ` (at ${d.locations.map(placeName).join(', ')})` : '');
  const limits = details.map((d) =>
    html`<li>${d.calendars ? `Calendars: ${d.calendars.join(', ')}` : 'All calendars, including ones added later'}${d.lookahead_days !== undefined ? `, up to ${d.lookahead_days} days ahead` : ''}, busy times only${at(d)}</li>`,
  );
  const until = pageTime(grant.expiresAt, timeZone);
  return html`<div class="who">
<p><strong>${resource?.name ?? grant.resource}</strong> through ${appName(client, { assured: false })}</p>
${whichApp(grant, client, timeZone)}
<ul>${parseScope(grant.scope).map((s) => html`<li>${SCOPE_DESCRIPTIONS[s] ?? s}</li>`)}${limits}</ul>
<p class="muted">Until ${until} · passes work on at most ${grant.maxDepth} hop${grant.maxDepth === 1 ? '' : 's'} · <code>${grant.id}</code></p>
<form method="post" action="/grants/revoke"><input type="hidden" name="csrf" value="${form.csrf}"><input type="hidden" name="signin" value="${form.signIn}"><input type="hidden" name="grant" value="${grant.id}"><button type="submit">Revoke</button></form>
</div>`;
}

/**
 * What tells this row's app from another of the same name: its id, where its answers go (hosts as the browser
 * resolves them, punycode), when it registered (or was first seen, for a metadata-document client) and when the user approved it. Every app names itself (RFC 7591),
 * so two apps, one an impostor, may both be "delegate CLI" (RFC 6749 §10.2; found in review: their rows were
 * word for word the same, and the owner could not tell which to revoke). The name is always marked unchecked
 * here: unlike the consent page, this page cannot know which app the owner's own CLI is.
 */
function whichApp(grant: GrantRecord, client: ClientRecord | undefined, timeZone: string): Html {
  const approved = pageTime(grant.createdAt, timeZone);
  if (!client) return html`<p class="muted">App id <code>${grant.clientId}</code> (no longer registered); approved ${approved}.</p>`;
  const hosts = [...new Set(client.redirectUris.map(hostOf))];
  const answers = hosts.length === 0 ? 'it gets its answers on another device (no redirect URI)' : html`its answers go to ${hosts.map((h, i) => html`${i > 0 ? ', ' : ''}<code>${h}</code>`)}`;
  // A client known by its metadata document's URL never registered: this server first saw it then, as the consent page
  // says (found in review, regress20g).
  const since = documentHost(client) !== undefined ? 'first seen here' : 'registered';
  return html`<p class="muted">App id <code>${client.clientId}</code>, ${since} ${pageTime(client.createdAt, timeZone)}; ${answers}; approved ${approved}.</p>`;
}

/** A redirect URI's host as the browser resolves it (WHATWG URL: ASCII, punycode), `cursor:` for an app's own scheme, else the URI as registered. */
function hostOf(uri: string): string {
  try {
    return redirectDestination(new URL(uri));
  } catch {
    return uri;
  }
}
