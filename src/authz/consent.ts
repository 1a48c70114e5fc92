// POST /consent: the user's decision on the consent page. The request must
// come from the page itself (same-origin, the session that saw the page, its
// single-use CSRF token); only then is the decision sent to the client. An
// approval creates the grant and a single-use authorization code.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthorizationDetail } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { AuthRequestRecord, ResourceRecord } from '../store/index.js';
import { redirectToClient } from './authorize.js';
import type { AuthContext } from './context.js';
import { constantTimeEqual, hashSecret, randomId, randomSecret } from './crypto.js';
import { sendErrorPage } from './pages.js';
import { currentSession } from './session.js';
import { audit } from './audit.js';

export function registerConsent(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/consent', async (req, reply) => {
    const refusal = crossSiteRefusal(req, ctx.issuer);
    if (refusal) return sendErrorPage(reply, 403, 'This request did not come from the consent page', refusal);

    const body = (req.body ?? {}) as FormBody;
    const field = (name: string): string | undefined => (typeof body[name] === 'string' ? (body[name] as string) : undefined);
    const requestId = field('request');
    const csrf = field('csrf');
    const decision = field('decision');
    if (!requestId || !csrf || (decision !== 'approve' && decision !== 'deny')) {
      return sendErrorPage(reply, 400, 'This form was not filled in by the consent page', 'A field is missing or repeated.');
    }

    const now = ctx.now();
    const signedIn = await currentSession(req, ctx.store, ctx.cookieName, now);
    const pending = await ctx.store.authRequestById(requestId, now);
    if (!signedIn || !pending) {
      return sendErrorPage(reply, 400, 'This request has expired', 'The consent page was open too long, or its decision was already taken. Start again from the app.');
    }
    // CSRF: the decision must come from the session that saw the page, with that page's token.
    if (pending.sessionHash !== signedIn.session.idHash || !constantTimeEqual(hashSecret(csrf), pending.csrfHash)) {
      return sendErrorPage(reply, 403, 'This request did not come from the consent page', 'Its security token does not match.');
    }
    const taken = await ctx.store.takeAuthRequest(requestId, now);
    if (!taken) return sendErrorPage(reply, 400, 'This request has expired', 'Its decision was already taken.');

    if (decision === 'deny') {
      await audit(ctx, { event: 'consent', user: taken.userId, client: taken.clientId, resource: taken.resource, detail: { decision: 'denied', scope: taken.scope } });
      req.log.info({ client: taken.clientId }, 'consent denied');
      return redirectToClient(reply, ctx, taken.redirectUri, { error: 'access_denied', error_description: 'The user denied the request.', state: taken.state ?? undefined }, 303);
    }
    return approve(req, reply, ctx, taken, now);
  });
}

async function approve(req: FastifyRequest, reply: FastifyReply, ctx: AuthContext, pending: AuthRequestRecord, now: number): Promise<FastifyReply> {
  const resource = await ctx.store.resourceByUrl(pending.resource);
  if (!resource) return sendErrorPage(reply, 400, 'This agent is no longer available', 'Its registration was removed while you were deciding.');

  const grantId = randomId('grt');
  await ctx.store.createGrant({
    id: grantId,
    userId: pending.userId,
    clientId: pending.clientId,
    resource: pending.resource,
    scope: pending.scope,
    authorizationDetails: downstreamDetails(resource),
    maxDepth: ctx.defaultMaxDepth,
    createdAt: now,
    expiresAt: now + ctx.lifetimes.grantSec * 1000,
    revokedAt: null,
  });
  const code = randomSecret();
  await ctx.store.createAuthCode({
    codeHash: hashSecret(code),
    clientId: pending.clientId,
    redirectUri: pending.redirectUri,
    codeChallenge: pending.codeChallenge,
    resource: pending.resource,
    scope: pending.scope,
    grantId,
    userId: pending.userId,
    familyId: randomId('fam'),
    createdAt: now,
    expiresAt: now + ctx.lifetimes.codeSec * 1000,
    usedAt: null,
  });
  await audit(ctx, { event: 'consent', user: pending.userId, client: pending.clientId, grant: grantId, resource: pending.resource, detail: { decision: 'approved', scope: pending.scope } });
  req.log.info({ client: pending.clientId, grant: grantId }, 'consent approved');
  return redirectToClient(reply, ctx, pending.redirectUri, { code, state: pending.state ?? undefined }, 303);
}

/** The agent's reach beyond its own resource, as RFC 9396 authorization details. */
export function downstreamDetails(resource: ResourceRecord): AuthorizationDetail[] {
  return resource.downstream.map((d) => ({ type: d.type, locations: [d.resource], actions: [...d.scopes] }));
}

/**
 * Browsers say where a form post came from: a present Origin must be the
 * issuer's, and Sec-Fetch-Site (when sent) must be same-origin.
 */
function crossSiteRefusal(req: FastifyRequest, issuer: string): string | undefined {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== new URL(issuer).origin) return 'It was sent by another site.';
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return 'It was sent by another site.';
  return undefined;
}
