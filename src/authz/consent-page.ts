// The consent page: names the app that asks, the agent that will act (with
// its identity statement, checked), what it may do in plain words and what it
// may not, the limits the user can narrow (calendars, how far ahead, how long,
// how far it may pass work on), and where the browser goes next. When the user
// already allowed part of it, only the new part is asked: more permissions,
// wider limits, or a calendar at an address the grant does not reach. Its two buttons are
// named exactly Approve and Deny.
import type { FastifyReply } from 'fastify';
import { CALENDAR_DETAIL_TYPE, SCOPE_DESCRIPTIONS, calendarLocations, parseScope, type CalendarDetail } from '../delegation/index.js';
import { uidsSaid } from '../http/listener-owner.js';
import { AccountRemovedError, type AuthRequestRecord, type GrantRecord, type UserRecord } from '../store/index.js';
import { verifyAgentStatement, type AgentVerification } from './agent-statement.js';
import { appName } from './app-name.js';
import type { AuthorizationRequest } from './authorize.js';
import { DEFAULT_EXPIRY_DAYS, DEPTH_CHOICES, EXPIRY_CHOICES, KEEP_EXPIRY, LATER_CALENDARS, lookaheadOptions, presetDepth, presetLookahead, untickedCalendars } from './consent-choices.js';
import type { AuthContext } from './context.js';
import { grantDetails, grantLimits, offeredDetails, pageOffer, unreachedLocations } from './grant-policy.js';
import { html, pageTime, sendPage, type Html } from './pages.js';
import { documentHost } from './policy/client-id-url.js';
import { isLoopbackRedirect, privateUseScheme } from './policy/redirect-uri.js';
import { REDIRECT_LISTENER_FIELD, foreignRedirectListeners } from './redirect.js';

export interface ConsentView {
  request: AuthorizationRequest;
  user: UserRecord;
  requestId: string;
  csrf: string;
  /** The user's existing grant to this client and agent, when this request widens it. */
  grant: GrantRecord | undefined;
  /** Set when the request comes from the device flow (RFC 8628): the code the device shows. */
  device?: { userCode: string };
  /**
   * Whether this server knows who made the request: the owner's CLI signed the sign-in link for this very
   * request (the session is bound to it). Otherwise the app's name is only what it registered.
   */
  clientAssured: boolean;
  /** The user's calendar names, stored with the pending request (calendarsShown): the page lists these, and no others. */
  calendars: readonly string[];
}

/**
 * The user's calendar names for a consent page, read before its pending request is stored: the page lists them and
 * the request keeps them (calendarsShown), so that Approve reads the boxes against what the page showed.
 */
export async function calendarNames(ctx: AuthContext, userId: string): Promise<string[]> {
  return (await ctx.store.listCalendars(userId)).map((c) => c.name);
}

/**
 * Stores the pending request a consent page is for; false, with nothing stored, when `delegate users remove` retired
 * its account after its session was read (the caller answers with sendAccountRemovedPage). Found in review (s26): a
 * JSON 500 (server_error).
 */
export async function savePendingRequest(ctx: AuthContext, request: AuthRequestRecord): Promise<boolean> {
  try {
    await ctx.store.createAuthRequest(request);
    return true;
  } catch (err) {
    if (err instanceof AccountRemovedError) return false;
    throw err;
  }
}

export async function renderConsent(reply: FastifyReply, ctx: AuthContext, view: ConsentView): Promise<FastifyReply> {
  const { request, user, grant } = view;
  const agentName = request.resource.name;
  const redirect = new URL(request.redirectUri);

  const held = new Set(parseScope(grant?.scope));
  const asked = parseScope(request.scope);
  const fresh = asked.filter((s) => !held.has(s));
  const abilities: Html[] = (grant ? fresh : asked).map((s) => html`<li>${describe(s)}</li>`);
  if (!grant) {
    const placeName = placeNamer(request.resource.downstream.map((d) => d.resource));
    for (const reach of request.resource.downstream) {
      for (const s of reach.scopes) abilities.push(html`<li>${describe(s)} <span class="muted">(${reach.type === CALENDAR_DETAIL_TYPE ? 'from the calendar service ' : ''}at ${placeName(reach.resource)})</span></li>`);
    }
  }
  if (grant) {
    // A calendar that moved (other ports, another --calendar-url) is a place the grant was never approved for: it is
    // asked for here, by its address, beside the one approved before (found in review: a sign-in after the move
    // asked nothing, and the grant kept reaching only the old address).
    const unreached = new Set(unreachedLocations(grant, request.resource));
    const left = calendarLocations(grant.authorizationDetails).filter((l) => !request.resource.downstream.some((d) => d.resource === l));
    const placeName = placeNamer([...left, ...request.resource.downstream.map((d) => d.resource)]);
    for (const reach of request.resource.downstream.filter((d) => unreached.has(d.resource))) {
      const was = left.length > 0 ? html`; you allowed it at ${left.map(placeName).join(', ')}, where it no longer reads` : '';
      for (const s of reach.scopes) abilities.push(html`<li>${describe(s)} <span class="muted">(${reach.type === CALENDAR_DETAIL_TYPE ? 'from the calendar service ' : ''}at <strong>${placeName(reach.resource)}</strong>${was})</span></li>`);
    }
    // The same scope with wider authorization details left this list empty under "It asks to also be able to"
    // (found in review): the limits it asks for are said too (RFC 9396 §9: the user is shown the details asked).
    for (const wider of widerLimits(request, grant)) abilities.push(html`<li>${wider}</li>`);
    if (abilities.length === 0) abilities.push(html`<li class="muted">Nothing more than today: it asks again for what you already allowed</li>`);
  }
  const already = grant ? [...held].map((s) => html`<li>${describe(s)}</li>`) : [];

  const agentClient = request.resource.agentClientId ? await ctx.store.clientById(request.resource.agentClientId) : undefined;
  const verification = agentClient ? await verifyAgentStatement(ctx.issuer, (kid) => ctx.keys.statementKey(kid), agentClient) : undefined;

  const listeners = view.device ? [] : foreignRedirectListeners(ctx, redirect);
  const returnTo = returnNotice(redirect, view.device, listeners);

  const body = html`<h1>${grant ? html`Allow ${agentName} to do more for you?` : html`Allow ${agentName} to act for you?`}</h1>
<p>${appName(request.client, { assured: view.clientAssured, startsSentence: true })} asks you to let <strong>${agentName}</strong> act for you. <span class="muted">(You are signed in as ${user.name}.)</span></p>
${listeners.length === 0 ? '' : anotherUsersListener(redirect, listeners)}
${clientBlock(request, redirect, view.clientAssured, user.timeZone, view.device !== undefined)}
${identityBlock(agentName, request.resource.url, verification)}
<h2>${grant ? 'It asks to also be able to' : html`${agentName} will be able to`}</h2>
<ul>${abilities}</ul>
${grant ? html`<h2>You already allowed it to</h2><ul>${already}</ul>` : ''}
<h2>It will not be able to</h2>
<ul><li>Create, change or delete your events</li><li>Sign in as you or see your password</li><li>Go beyond the limits you set below</li></ul>
<form method="post" action="/consent">
<input type="hidden" name="request" value="${view.requestId}">
<input type="hidden" name="csrf" value="${view.csrf}">
${limitsBlock(request, view.calendars, ctx.defaultMaxDepth, agentName, grant && currentLimits(grant, user.timeZone))}
${returnTo}
<div class="actions">
<button class="primary" type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</div>
</form>`;
  return sendPage(reply, 200, `Allow ${agentName} to act for you?`, body, [formActionFor(redirect)]);
}

/**
 * What CSP form-action must list for the browser to follow the redirect after the consent form to `redirect`: its
 * origin; for an app's own scheme, whose URLs have no origin ("null"), the scheme itself (CSP scheme-source; the
 * registered scheme is RFC 3986's letters only); and for an IPv6 literal (`http://[::1]:PORT`, a loopback redirect
 * RFC 8252 §7.3 names), its scheme too, since CSP's host-source has no form for one: listed as an origin, Chromium
 * dropped it as invalid and blocked the redirect, so the app never got its code (found in review, s34interop). The
 * form itself posts only to this server ('self'); where the browser goes next is the registered URI the server chose.
 */
function formActionFor(redirect: URL): string {
  const scheme = privateUseScheme(redirect);
  if (scheme !== undefined) return `${scheme}:`;
  return redirect.hostname.startsWith('[') ? redirect.protocol : redirect.origin;
}

/**
 * Where the app that asked is, and what happens after the decision. A device
 * request's redirect URI is this server's own /device/done, on loopback when
 * the server is, yet the app that asked is on another device, perhaps an
 * attacker's who sent the user the code (RFC 8628 §5.4): so the device flow is
 * told by where the request came from, never by its redirect URI.
 *
 * A loopback redirect URI whose port another user's program holds (`listeners`: their uids, one for each user whose
 * program a connection there may reach: for `localhost`, on 127.0.0.1 or [::1]) is said to go to that user,
 * here and, in bold, at the top of the page (found in review, s23local: the page said the app "runs on this
 * computer; … you go back to it" while the code went to another user's program). The page warns rather than
 * refuses: the person may mean it (another account of theirs), and it is their call once said. The uids named go
 * back with the form, and Approve issues no code to another user's program that the page did not name, such as
 * one that began to listen after the page was shown (consent.ts).
 */
function returnNotice(redirect: URL, device: ConsentView['device'], listeners: readonly number[]): Html {
  if (device) {
    return html`<p class="warn">The app that asked is on another device, the one showing the code <strong>${device.userCode}</strong>, not in this browser. Approve only if you started this sign-in yourself, on a device you have with you. If someone sent you this code or link, choose Deny.</p>`;
  }
  if (listeners.length > 0) {
    return html`<p class="warn">After you decide, the answer goes to that program of another user (${uidsSaid(listeners)}), not back to an app of yours.</p>
<input type="hidden" name="${REDIRECT_LISTENER_FIELD}" value="${listeners.join(',')}">`;
  }
  if (isLoopbackRedirect(redirect)) return html`<p class="muted">The app that asked runs on this computer; after you decide, you go back to it.</p>`;
  const scheme = privateUseScheme(redirect);
  if (scheme !== undefined) {
    // RFC 8252 §7.1, §8.6: the browser hands the answer to whichever app on this device claimed the scheme, and any
    // app may claim any scheme (PKCE keeps the code useless to an app that did not ask).
    return html`<p class="warn">After you decide, your browser hands the answer to the app on this device that opens <strong>${scheme}:</strong> links. This server cannot check which app that is: any app can claim such links. Approve only if you just started this from the app you expect.</p>`;
  }
  return html`<p class="warn">After you decide, you will be sent to <strong>${redirect.host}</strong>. Approve only if you expected to use that site.</p>`;
}

/** Said at the top of the page when another user's program (`uids`) listens at the loopback redirect URI (returnNotice). */
function anotherUsersListener(redirect: URL, uids: readonly number[]): Html {
  return html`<p class="warn"><strong>Its answer goes to a program of another user of this computer (${uidsSaid(uids)})</strong>, the one listening at <code>${redirect.host}</code>, not to a program of yours, whatever name the app gave. Approve only if you mean to let that user act for you as described here; otherwise choose Deny.</p>`;
}

/**
 * Who the app that asks is, as far as this server can tell. Every app here registered itself (RFC 7591) under a
 * name of its choosing, "delegate CLI" included, so a name proves nothing (RFC 6749 §10.2, RFC 8252 §8.6; found
 * in review: a look-alike registered as "delegate CLI" got a page word for word the real CLI's, under the
 * agent's verified badge). The page says so, and shows what does tell apps apart: the app's id, when it
 * registered, and where the answer goes (MCP Security Best Practices: the consent page shows the client and
 * its redirect URI). Only a request the owner's CLI signed the sign-in for is named as delegate's own.
 * The redirect URI is shown as the browser resolves it (WHATWG URL: an ASCII, punycode host), never as
 * registered: a look-alike host such as accounts.gооgle.com (Cyrillic о) read as Google's while the warning
 * below named accounts.xn--ggle-55da.com (found in review). One destination, the same in both places.
 */
function clientBlock(request: AuthorizationRequest, redirect: URL, assured: boolean, timeZone: string, device: boolean): Html {
  // Before the owner's-CLI case: a document client is never delegate's own CLI, whoever signed the sign-in link.
  const host = documentHost(request.client);
  if (host !== undefined) return documentClientBlock(request, host, redirect, timeZone, device);
  if (assured) {
    return html`<p class="muted">Your own <code>delegate</code> command on this computer started this request and signed you in for it.</p>`;
  }
  return html`<div class="who"><p class="warn">This server has not checked who made this app: anyone can register an app under any name. Approve only if you just started this from an app you trust.</p>
<p class="muted">App id <code>${request.client.clientId}</code>, registered ${pageTime(request.client.createdAt, timeZone)}${device ? '' : html`; its answer goes to <code>${redirect.href}</code>`}.</p></div>`;
}

/**
 * A client named by its metadata document's URL (draft-ietf-oauth-client-id-metadata-document, OAuth Phishing
 * Attacks): the site that publishes the document is what this server knows, so its host is shown, as the browser
 * writes it (punycode, as for the redirect URI above); the name and every other field are the document's own
 * claims. Its logo and links are not shown: nothing in them was checked.
 */
function documentClientBlock(request: AuthorizationRequest, host: string, redirect: URL, timeZone: string, device: boolean): Html {
  return html`<div class="who"><p class="warn">This app is known by its address: <strong>${host}</strong> publishes its details at <code>${request.client.clientId}</code>. This server checked only that the document is served there; the app's name and everything else in it are that site's own claims. Approve only if you trust ${host} and just started this from its app.</p>
<p class="muted">First seen here ${pageTime(request.client.createdAt, timeZone)}${device ? '' : html`; its answer goes to <code>${redirect.href}</code>`}.</p></div>`;
}

function identityBlock(agentName: string, resourceUrl: string, verification: AgentVerification | undefined): Html {
  if (!verification?.ok) {
    return html`<div class="who"><p><strong>${agentName}</strong> <span class="warn">· identity not verified</span></p>
<p class="muted">The agent at <code>${resourceUrl}</code>. ${verification ? verification.reason : 'It has no identity statement.'}</p></div>`;
  }
  const p = verification.agent.profile;
  return html`<div class="who">
<p><strong>${p.name}</strong> <span class="verified">✓ verified</span> <span class="muted">— this server vouches that it is the agent it says it is</span></p>
<p>${p.description}</p>
<p class="muted">Run by ${p.operator.name} (${p.operator.contact}).</p>
${p.limitations.length > 0 ? html`<p class="muted">It promises: ${p.limitations.join('; ')}.</p>` : ''}
<p class="muted">Technical details: ${p.softwareId} ${p.softwareVersion}, at <code>${resourceUrl}</code></p>
</div>`;
}

/**
 * The limits, each starting from what the user chose before when a grant exists (so asking for one
 * more permission never widens the others unseen), else from the defaults; each shows the current
 * value beside it, so a widening is the user's own visible choice.
 */
function limitsBlock(request: AuthorizationRequest, userCalendars: readonly string[], maxDepth: number, agentName: string, before: GrantToday | undefined): Html {
  const offer = pageOffer(offeredDetails(request.resource, request.details));
  const parts: Html[] = [html`<h2>Your limits</h2>`];
  if (before) parts.push(html`<p class="muted">They start from what you allowed before. Today it may ${before.summary(agentName)}.</p>`);
  if (offer) {
    const offered = offer.calendars ? userCalendars.filter((c) => offer.calendars!.includes(c)) : userCalendars;
    const ticked = (c: string) => !before?.calendars || before.calendars.includes(c);
    parts.push(
      offered.length === 0
        ? noCalendarToTick(offer.calendars, userCalendars, before)
        : html`<fieldset><legend>Calendars it may look at</legend>
${offered.map((c) => html`<label><input type="checkbox" name="calendars" value="${c}"${ticked(c) ? html` checked` : ''}> ${c}</label>`)}
${offer.calendars ? '' : laterBox(!before || !before.calendars)}
</fieldset>`,
    );
    const options = lookaheadOptions(offer.lookahead_days);
    const preferred = presetLookahead(offer.lookahead_days, before);
    parts.push(html`<label for="lookahead_days">How far ahead it may look</label>
<select id="lookahead_days" name="lookahead_days">${options.map((d) => html`<option value="${d}"${d === preferred ? html` selected` : ''}>${days(d)}</option>`)}</select>`);
  }
  // On a step-up the delegation keeps its current end unless the user picks a new length.
  const expiry = before ? KEEP_EXPIRY : DEFAULT_EXPIRY_DAYS;
  parts.push(html`<label for="expires_days">For how long</label>
<select id="expires_days" name="expires_days">${before ? html`<option value="${KEEP_EXPIRY}" selected>Until ${before.until}, as now</option>` : ''}${EXPIRY_CHOICES.map((d) => html`<option value="${d}"${d === expiry ? html` selected` : ''}>${days(d)}, unless you revoke it sooner</option>`)}</select>`);
  const depths = DEPTH_CHOICES.filter((d) => d <= maxDepth);
  // A first consent starts from no helper agent; a step-up keeps the grant's choice (presetDepth).
  const depth = presetDepth(maxDepth, before);
  parts.push(html`<label for="max_depth">May it ask another agent to help?</label>
<select id="max_depth" name="max_depth">${depths.map(
    (d) => html`<option value="${d}"${d === depth ? html` selected` : ''}>${d === 1 ? html`No — only ${agentName} itself` : html`Yes — one helper agent, within these limits`}</option>`,
  )}</select>`);
  return html`${parts}`;
}

/**
 * What the page says where it has no calendar to tick (the user has none, or none the client asked for): what an Approve
 * allows, the calendars asked within those allowed today on a step-up (untickedCalendars, as consent.ts reads it).
 */
function noCalendarToTick(asked: readonly string[] | undefined, userCalendars: readonly string[], before: GrantToday | undefined): Html {
  const allowed = untickedCalendars(asked, before);
  if (allowed?.length === 0) {
    return html`<p class="warn">It asks only for calendars you did not allow it before (${asked!.join(', ')}; today: ${before!.calendars!.join(', ')}), and none of yours is here to choose: approving cannot add them. To allow them, revoke this permission and sign in again.</p>`;
  }
  if (userCalendars.length > 0 && asked) {
    // Found in review: this said "You have no calendars yet" to a user who has some, when none had a name asked for.
    const names = allowed!.length === asked.length ? 'with those names' : `named ${allowed!.join(', ')}`;
    return html`<p class="muted">It asks only for calendars you do not have (${asked.join(', ')}): it will see none of yours (${userCalendars.join(', ')}), only ones added later ${names}.</p>`;
  }
  return html`<p class="muted">You have no calendars yet; it may look at ${allowed ? html`the ones added later named ${allowed.join(', ')}` : 'every calendar added later'}.</p>`;
}

/**
 * The choice of calendars added later, ticked by default only where nothing narrower was asked or allowed before: a
 * request naming no calendars, and no grant or one with no calendar limit. Offered only to such a request (a client
 * that named its calendars is never given later ones). Ticking every box above no longer means "all" by itself
 * (found in review, s23deleg: it did, and a calendar added afterwards was read under tokens issued before).
 */
function laterBox(ticked: boolean): Html {
  // On a line of its own, below a rule: beside the calendars it read as one more calendar's name.
  return html`<label class="apart"><input type="checkbox" name="${LATER_CALENDARS.name}" value="${LATER_CALENDARS.value}"${ticked ? html` checked` : ''}> Calendars added later</label>
<p class="muted">Ticked, with every calendar above ticked too, it may also look at calendars added from now on, without asking you again. Otherwise it sees only the calendars ticked above.</p>`;
}

/**
 * What the request's own authorization details ask beyond the grant's limits, in words: more calendars, all of
 * them, or further ahead. A request that names no details asks for no limit of its own (the page offers the
 * choices, starting from today's), so it adds nothing here.
 */
function widerLimits(request: AuthorizationRequest, grant: GrantRecord): string[] {
  const held = grantDetails(grant);
  const out: string[] = [];
  for (const asked of request.details.filter((d) => d.type === CALENDAR_DETAIL_TYPE)) {
    // Against the grant's entry for the place this entry asks for, not its first entry (left open in the s24 note: an
    // entry for a second place was told "today" what the first place allows). A place the grant does not reach is
    // asked for above, by its address.
    const today = held.find((h) => asked.locations.every((l) => h.locations.includes(l)));
    if (!today) continue;
    const todayCalendars = today.calendars ? `today: ${today.calendars.join(', ')}` : '';
    if (today.calendars && !asked.calendars) out.push(`Look at all your calendars (${todayCalendars})`);
    else if (today.calendars && asked.calendars) {
      const more = asked.calendars.filter((c) => !today.calendars!.includes(c));
      if (more.length > 0) out.push(`Look at the calendar${more.length === 1 ? '' : 's'} ${more.join(', ')} too (${todayCalendars})`);
    }
    if (today.lookahead_days !== undefined && (asked.lookahead_days === undefined || asked.lookahead_days > today.lookahead_days)) {
      out.push(`Look ${asked.lookahead_days === undefined ? 'any distance' : `up to ${days(asked.lookahead_days)}`} ahead (today: ${days(today.lookahead_days)})`);
    }
  }
  return [...new Set(out)];
}

/** What currentLimits says of a grant: its limits (grantLimits, the CurrentLimits readChoices takes) with its end and a summary. */
type GrantToday = ReturnType<typeof currentLimits>;

/**
 * What an existing grant allows today, for the page to start from and to show: every calendar entry of it (RFC 9396),
 * not its first alone (left open in the s24 note: a grant whose entries for two places allow different limits, as an
 * older one may, was said to allow the first place's, and the page started from them). The page starts from the
 * narrowest of them (pageOffer), since its one set of limits applies to every place: the first entry's, wider than
 * another's, would have widened that place on an Approve that said nothing of it. Entries that all allow the same are
 * said once, as before; otherwise each with its place.
 */
function currentLimits(grant: GrantRecord, timeZone: string) {
  const held = grantDetails(grant);
  const until = pageTime(grant.expiresAt, timeZone);
  return {
    ...grantLimits(grant),
    until,
    summary(agentName: string): Html {
      const parts: string[] = [];
      const [first] = held;
      if (first && held.every((d) => sameLimits(d, first))) {
        parts.push(`look at ${calendarsSaid(first)}`);
        if (first.lookahead_days !== undefined) parts.push(`${days(first.lookahead_days)} ahead`);
      } else if (first) {
        const placeName = placeNamer(held.flatMap((d) => d.locations));
        parts.push(`look at ${held.map((d) => `${calendarsSaid(d)}${d.lookahead_days !== undefined ? `, ${days(d.lookahead_days)} ahead` : ''} (at ${d.locations.map(placeName).join(', ')})`).join(' and ')}`);
      }
      parts.push(grant.maxDepth <= 1 ? `with no helper agent but ${agentName}` : 'with one helper agent');
      parts.push(`until ${until}`);
      return html`${parts.join(', ')}`;
    },
  };
}

/** "the calendar demo", "the calendars demo, work" or "all your calendars, including ones added later". */
function calendarsSaid(d: CalendarDetail): string {
  return d.calendars ? `the calendar${d.calendars.length === 1 ? '' : 's'} ${d.calendars.join(', ')}` : 'all your calendars, including ones added later';
}

/** Whether two entries allow the same calendars and lookahead. */
function sameLimits(a: CalendarDetail, b: CalendarDetail): boolean {
  return JSON.stringify(a.calendars) === JSON.stringify(b.calendars) && a.lookahead_days === b.lookahead_days;
}

function days(n: number): string {
  return n === 1 ? '1 day' : n === 365 ? '1 year' : `${n} days`;
}

function describe(scope: string): string {
  return SCOPE_DESCRIPTIONS[scope] ?? `Use the permission “${scope}”`;
}

/**
 * How a page names the places an agent reads, given every place it names: by host and port ("127.0.0.1:8411"), unless
 * another of them shares that host, as two calendar services on one origin at different paths do
 * (http://127.0.0.1:10/team-a and /team-b, a supported setup): then by origin and path. Found in review (s25new): the
 * grants page and the step-up consent page said "(at 127.0.0.1:10)" for both. A value that is no URL is named as it is.
 */
export function placeNamer(places: readonly string[]): (place: string) => string {
  return (place) => {
    const host = urlPart(place, (u) => u.host);
    const shared = places.some((other) => other !== place && urlPart(other, (u) => u.host) === host);
    return shared ? urlPart(place, (u) => `${u.origin}${u.pathname}${u.search}`) : host;
  };
}

function urlPart(value: string, part: (url: URL) => string): string {
  try {
    return part(new URL(value));
  } catch {
    return value;
  }
}
