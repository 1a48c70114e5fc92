// Client authentication at the token and revocation endpoints (RFC 6749
// §2.3): public clients name themselves (`none`), confidential ones use a
// secret (Basic or in the body), and agents sign a private_key_jwt assertion
// (RFC 7523 §3, single-use jti, audience: the issuer identifier alone). A
// request may use one method only, and it must be the one the client
// registered. The same rules hold at every endpoint that authenticates clients,
// except that an endpoint may refuse `none` (`requireCredentials`): the
// introspection endpoint does (RFC 7662 §2.1).
import type { FastifyRequest } from 'fastify';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { CLIENT_ASSERTION_TYPE_JWT_BEARER, SIGNING_ALG } from '../delegation/index.js';
import type { FormBody } from '../http/app.js';
import type { ClientRecord, Store, TokenEndpointAuthMethod } from '../store/index.js';
import type { ClientDocuments } from './client-documents.js';
import { constantTimeEqual, hashSecret } from './crypto.js';
import { InvalidClientError, InvalidRequestError } from './errors.js';
import { single } from './params.js';
import { requestSource } from './request-source.js';

export interface AuthenticatedClient {
  client: ClientRecord;
  method: TokenEndpointAuthMethod;
}

export interface ClientAuthContext {
  store: Store;
  /** The issuer identifier (RFC 8414): the only audience a client assertion may name. */
  issuer: string;
  now: () => number;
  /** Finds clients named by a metadata document's URL (client-documents.ts); without it, only stored clients exist. */
  clientDocuments?: Pick<ClientDocuments, 'find'>;
}

export interface ClientAuthOptions {
  /**
   * Refuse a client that only names itself (`none`), whoever it is: the same
   * invalid_client for a public client, a confidential one that sent no
   * credentials and an unknown client_id, decided before any look-up, so the
   * answer says nothing about which client ids exist.
   */
  requireCredentials?: boolean;
}

/** Longest lifetime accepted for a client assertion. */
const MAX_ASSERTION_LIFETIME_SEC = 300;

export async function authenticateClient(req: FastifyRequest, body: FormBody, ctx: ClientAuthContext, options: ClientAuthOptions = {}): Promise<AuthenticatedClient> {
  const basic = parseBasic(req.headers.authorization);
  const bodyId = single(body, 'client_id');
  const bodySecret = single(body, 'client_secret');
  const assertionType = single(body, 'client_assertion_type');
  const assertion = single(body, 'client_assertion');

  const used = [basic !== undefined, bodySecret !== undefined, assertion !== undefined || assertionType !== undefined].filter(Boolean).length;
  if (used > 1) throw new InvalidRequestError('Use exactly one client authentication method.');

  if (basic) {
    if (bodyId !== undefined && bodyId !== basic.id) throw new InvalidRequestError('client_id does not match the Basic credentials.');
    return { client: await checkSecret(ctx.store, basic.id, basic.secret, 'client_secret_basic'), method: 'client_secret_basic' };
  }
  if (bodySecret !== undefined) {
    if (bodyId === undefined) throw new InvalidRequestError('client_id is required with client_secret.');
    return { client: await checkSecret(ctx.store, bodyId, bodySecret, 'client_secret_post'), method: 'client_secret_post' };
  }
  if (assertion !== undefined || assertionType !== undefined) {
    if (assertionType !== CLIENT_ASSERTION_TYPE_JWT_BEARER) throw new InvalidRequestError('client_assertion_type must be jwt-bearer.');
    if (assertion === undefined) throw new InvalidRequestError('client_assertion is required.');
    return { client: await checkAssertion(ctx, assertion, bodyId), method: 'private_key_jwt' };
  }
  if (options.requireCredentials) throw new InvalidClientError('This endpoint requires client authentication.');
  if (bodyId === undefined) throw new InvalidClientError('Client authentication is required.');
  // A public client may be one its metadata document describes (the draft's Client Information Discovery: fetched
  // here, or refused saying why; a new one counted against this request's source).
  const client = ctx.clientDocuments ? await ctx.clientDocuments.find(bodyId, requestSource(req, ctx.issuer)) : await ctx.store.clientById(bodyId);
  if (!client) throw new InvalidClientError('Unknown client.');
  if (client.tokenEndpointAuthMethod !== 'none') throw new InvalidClientError('This client must authenticate.');
  return { client, method: 'none' };
}

/** RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64. */
function parseBasic(header: string | undefined): { id: string; secret: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) throw new InvalidClientError('Malformed Basic credentials.');
  try {
    return { id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')), secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')) };
  } catch {
    throw new InvalidClientError('Malformed Basic credentials.');
  }
}

async function checkSecret(store: Store, clientId: string, secret: string, method: TokenEndpointAuthMethod): Promise<ClientRecord> {
  const client = await store.clientById(clientId);
  // Compare even for an unknown client, so timing does not tell which client ids exist.
  const expected = client?.secretHash ?? hashSecret('');
  const matches = constantTimeEqual(hashSecret(secret), expected);
  if (!client || !client.secretHash || !matches) throw new InvalidClientError('Client authentication failed.');
  if (client.tokenEndpointAuthMethod !== method) throw new InvalidClientError(`This client is registered for ${client.tokenEndpointAuthMethod}.`);
  return client;
}

async function checkAssertion(ctx: ClientAuthContext, assertion: string, bodyId: string | undefined): Promise<ClientRecord> {
  const [, payloadPart] = assertion.split('.');
  let claimedId: unknown;
  try {
    claimedId = JSON.parse(Buffer.from(payloadPart ?? '', 'base64url').toString('utf8')).sub;
  } catch {
    throw new InvalidClientError('The client assertion is malformed.');
  }
  if (typeof claimedId !== 'string') throw new InvalidClientError('The client assertion names no client.');
  if (bodyId !== undefined && bodyId !== claimedId) throw new InvalidClientError('client_id does not match the client assertion.');
  const client = await ctx.store.clientById(claimedId);
  if (!client || client.tokenEndpointAuthMethod !== 'private_key_jwt' || !client.jwks) throw new InvalidClientError('Client authentication failed.');

  const nowSec = Math.floor(ctx.now() / 1000);
  let payload;
  try {
    ({ payload } = await jwtVerify(assertion, createLocalJWKSet(client.jwks as JSONWebKeySet), {
      algorithms: [SIGNING_ALG],
      issuer: client.clientId,
      subject: client.clientId,
      currentDate: new Date(nowSec * 1000),
      requiredClaims: ['aud', 'exp', 'jti'],
    }));
  } catch {
    throw new InvalidClientError('The client assertion is not valid for this client.');
  }
  if (!isIssuerAudience(payload.aud, ctx.issuer)) {
    throw new InvalidClientError(`The client assertion's aud must be this server's issuer identifier, ${ctx.issuer}.`);
  }
  const exp = payload.exp!;
  if (exp - (payload.iat ?? nowSec) > MAX_ASSERTION_LIFETIME_SEC || exp - nowSec > MAX_ASSERTION_LIFETIME_SEC) {
    throw new InvalidClientError('The client assertion lives too long.');
  }
  if (typeof payload.jti !== 'string' || payload.jti.length < 16) throw new InvalidClientError('The client assertion needs a unique jti.');
  // RFC 7523 §3 item 7: an assertion may be used once.
  const fresh = await ctx.store.useOnce(`client-assertion:${client.clientId}:${payload.jti}`, exp * 1000, ctx.now());
  if (!fresh) throw new InvalidClientError('The client assertion was already used.');
  return client;
}

/**
 * The audience rule of draft-ietf-oauth-rfc7523bis (its update to RFC 7523
 * §3), written after the OpenID Foundation's 2025 disclosure of audience
 * injection in private_key_jwt: the client uses the AS's issuer identifier as
 * `aud` and MUST NOT use the token endpoint URL; `aud` MUST be a JSON string,
 * not a single-valued array; and the AS MUST reject a JWT whose sole audience
 * value is not its issuer identifier. RFC 7523 had let a client name the
 * token endpoint, so a malicious AS that got a client to sign for the URL of
 * our token endpoint (by publishing it as its own) could replay the assertion
 * here. Hence one rule at /token and every other endpoint alike: `aud` is the
 * issuer, as a string, compared as plain strings (RFC 3986 §6.2.1); not an
 * endpoint's URL, not a list, not even a list holding only the issuer.
 */
function isIssuerAudience(aud: unknown, issuer: string): boolean {
  return aud === issuer;
}
