// Issuing an authorization code for a grant, after consent or when an
// existing grant already covers the request: 256 random bits, stored hashed,
// single-use, bound to the client, redirect URI, PKCE challenge and resource.
import type { FastifyReply } from 'fastify';
import type { AuthContext } from './context.js';
import { hashSecret, randomId, randomSecret } from './crypto.js';
import { redirectToClient } from './redirect.js';

export interface CodeRequest {
  userId: string;
  clientId: string;
  redirectUri: string;
  /** Whether the authorization request sent redirect_uri (RFC 6749 §4.1.3: then /token must send the same). */
  redirectUriGiven: boolean;
  resource: string;
  scope: string;
  codeChallenge: string;
  state: string | null | undefined;
  grantId: string;
}

export async function issueCode(reply: FastifyReply, ctx: AuthContext, request: CodeRequest, status: 302 | 303): Promise<FastifyReply> {
  const now = ctx.now();
  const code = randomSecret();
  await ctx.store.createAuthCode({
    codeHash: hashSecret(code),
    clientId: request.clientId,
    redirectUri: request.redirectUri,
    redirectUriGiven: request.redirectUriGiven,
    codeChallenge: request.codeChallenge,
    resource: request.resource,
    scope: request.scope,
    grantId: request.grantId,
    userId: request.userId,
    familyId: randomId('fam'),
    createdAt: now,
    expiresAt: now + ctx.lifetimes.codeSec * 1000,
    usedAt: null,
  });
  return redirectToClient(reply, ctx, request.redirectUri, { code, state: request.state ?? undefined }, status);
}
