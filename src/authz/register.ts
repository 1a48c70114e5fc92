// POST /register: open dynamic client registration (RFC 7591) for the apps a
// user runs, such as MCP clients. Redirect URIs must be https, http on a
// loopback address (RFC 8252 §7.3), or an app's private-use scheme for a
// public client (§7.1; policy/redirect-uri.ts). Clients that authenticate with keys
// (agents) are created by an administrator, never here. Open registration is
// bounded (§3 lets it be rate-limited against denial of service): so many
// new clients per source address (all of loopback counting as one), in one
// budget with the clients of metadata documents (client-documents.ts), each
// field and the whole metadata capped; clients that never get a grant are
// swept a day later (the store's sweep()).
import type { FastifyInstance } from 'fastify';
import { GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, isWellFormedScope } from '../delegation/index.js';
import type { AuditEventInput, ClientRecord, TokenEndpointAuthMethod } from '../store/index.js';
import type { AuthContext } from './context.js';
import { hashSecret, randomId, randomSecret } from './crypto.js';
import { InvalidClientMetadataError, InvalidRedirectUriError, replyWithError, TooManyRequestsError } from './errors.js';
import { RFC3986_CHARACTERS, checkRegistrableRedirectUri, isLoopbackRedirect, privateUseScheme } from './policy/redirect-uri.js';
import { hasControlCharacters } from '../terminal-text.js';
import { GRANT_TYPE_DEVICE_CODE } from './device.js';
import { RateLimits, type RateLimitRule } from './rate-limit.js';
import { requestSource } from './request-source.js';

const OPEN_AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
const OPEN_GRANT_TYPES = [GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_DEVICE_CODE];
const MAX_REDIRECT_URIS = 10;
/** Longer than any redirect URI an app needs (browsers keep URLs of about 2,000 characters in view). */
const MAX_REDIRECT_URI_LENGTH = 2048;
/** The text fields' bound: an e-mail address is at most 254 characters (RFC 5321 §4.5.3.1), a mailto: URI a few more. */
const MAX_TEXT_LENGTH = 512;
/**
 * The registered metadata as stored and echoed, in UTF-8 bytes. Real clients register a few hundred bytes
 * (the CLI's is 238); without it, every field at its bound made a 60 KB client (found in review).
 */
export const MAX_METADATA_BYTES = 8192;
/**
 * RFC 7591 §3: open registration "MAY be rate-limited". New clients accepted per source (request-source.ts), in
 * each window, whether registered here or made from a Client ID Metadata Document (client-documents.ts), in one
 * budget (newClientBudget): 300 a minute takes the bursts of the benchmarks (64 clients signed in within a second),
 * the load test (50) and the fuzzer and security tests, which register hundreds against one server; 3,000 a day
 * (the sweep's 24 hours) bounds what one source can add, at MAX_METADATA_BYTES each, to about 50 MB, where a flood
 * added 14 MB a second. A person registers a handful of apps. Found in review (s21): the two ways kept counters of
 * their own, so one source could add 6,000 clients a day.
 */
export const REGISTRATION_LIMITS: readonly RateLimitRule[] = Object.freeze([
  { limit: 300, windowMs: 60_000 },
  { limit: 3_000, windowMs: 86_400_000 },
]);
/** Sources kept in the counters: a bound on their memory (the oldest source is forgotten first). */
const COUNTED_SOURCES = 1_000;

/** The one budget of new clients per source that /register and metadata-document clients both spend (REGISTRATION_LIMITS). */
export function newClientBudget(rules: readonly RateLimitRule[], now: () => number): RateLimits {
  return new RateLimits(rules, now, COUNTED_SOURCES);
}
const TEXT_FIELDS = ['client_name', 'client_uri', 'logo_uri', 'tos_uri', 'policy_uri', 'software_id', 'software_version'] as const;

/**
 * RFC 7591 §2: the fields whose value is the URL of a web page (the client's home page, logo, terms, policy), which the
 * registration response echoes and a client or a page may follow. Found in review (s25rfc): `javascript:alert(1)` and
 * `not a url` were stored and echoed.
 */
const PAGE_URL_FIELDS = new Set<string>(['client_uri', 'logo_uri', 'tos_uri', 'policy_uri']);

/**
 * An absolute https URL, or http on a loopback name (a local app's pages, as for redirect URIs, RFC 8252 §7.3), written
 * in RFC 3986's characters with a lower-case scheme and read by a URL parser as such, with no user information.
 */
function isPageUrl(value: string): boolean {
  if (!/^https?:\/\//.test(value) || !RFC3986_CHARACTERS.test(value) || !URL.canParse(value)) return false;
  const url = new URL(value);
  return url.username === '' && url.password === '' && (url.protocol === 'https:' || isLoopbackRedirect(url));
}

export function registerRegistration(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/register', async (req, reply) => {
    try {
      const source = requestSource(req, ctx.issuer);
      const wait = ctx.newClients.retryAfterMs(source);
      if (wait > 0) {
        reply.header('Retry-After', String(Math.ceil(wait / 1000)));
        throw new TooManyRequestsError(`This authorization server has registered too many clients from this address lately; try again in ${Math.ceil(wait / 1000)} seconds.`);
      }
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/json')) {
        throw new InvalidClientMetadataError('Registration requests must be application/json.');
      }
      const client = buildClient(req.body, ctx.now());
      const secret = client.tokenEndpointAuthMethod === 'none' ? undefined : randomSecret();
      if (secret) client.secretHash = hashSecret(secret);
      // Counted before the write (no await since the check above, so requests sent at once cannot all pass it),
      // taken back if the write fails: only clients that exist count.
      // On the audit log in the client's own transaction (found in review, s24: a registration left no record, so
      // who added a client, from where, with which redirect URIs, was nowhere). Never the secret: only its hash is kept.
      await ctx.newClients.spend(source, () => ctx.store.createClient(client, { event: registrationRecord(client, req.ip), at: client.createdAt }));
      req.log.info({ client: client.clientId }, 'client registered');
      return reply
        .code(201)
        .header('Cache-Control', 'no-store')
        .header('Pragma', 'no-cache')
        .send({
          ...client.metadata,
          client_id: client.clientId,
          client_id_issued_at: Math.floor(client.createdAt / 1000),
          ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
        });
    } catch (err) {
      return replyWithError(req, reply, err);
    }
  });
}

/**
 * The `client_registered` record of a client added here, at /register or from its metadata document (`client_updated`
 * when a later document changed these fields): who it says it is, where its codes go, and the address it came from (for a document's client, the source of the request that named
 * it, as its budget counts it: request-source.ts).
 */
export function registrationRecord(client: ClientRecord, address: string, event: 'client_registered' | 'client_updated' = 'client_registered'): AuditEventInput {
  return {
    event,
    client: client.clientId,
    detail: {
      client_name: client.clientName,
      redirect_uris: client.redirectUris,
      grant_types: client.grantTypes,
      token_endpoint_auth_method: client.tokenEndpointAuthMethod,
      source_address: address,
    },
  };
}

/** Validates registration metadata into a client record (RFC 7591 §2), or throws the RFC error. */
export function buildClient(body: unknown, now: number): ClientRecord {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new InvalidClientMetadataError('The metadata must be a JSON object.');
  const m = body as Record<string, unknown>;

  const grantTypes = stringList(m.grant_types, 'grant_types') ?? [GRANT_TYPE_AUTHORIZATION_CODE];
  const unknownGrant = grantTypes.find((g) => !OPEN_GRANT_TYPES.includes(g));
  if (unknownGrant) throw new InvalidClientMetadataError(`The grant type ${unknownGrant} cannot be registered.`);
  const redirectBased = grantTypes.includes(GRANT_TYPE_AUTHORIZATION_CODE);
  // RFC 7591 §2 makes "code" the default response type, but §2.1 asks the server not to let a client register
  // itself into an inconsistent state, and §3.1 lets it provision what is omitted: with no response_types, they
  // follow grant_types (none for a client of the device grant alone). Values given and in conflict are refused.
  const responseTypes = stringList(m.response_types, 'response_types') ?? (redirectBased ? ['code'] : []);
  if (responseTypes.some((r) => r !== 'code')) throw new InvalidClientMetadataError("Only the response type 'code' is supported.");
  const codeResponses = responseTypes.length > 0; // 'code' is the one response type taken
  if (redirectBased !== codeResponses) {
    throw new InvalidClientMetadataError('grant_types and response_types do not agree (RFC 7591 section 2.1).');
  }
  // §2.1 too: no registering into an inconsistent state. A refresh token comes only from a grant that issues tokens
  // first, so [] or ["refresh_token"] alone could never get one (found in review: both were 201).
  if (!grantTypes.includes(GRANT_TYPE_AUTHORIZATION_CODE) && !grantTypes.includes(GRANT_TYPE_DEVICE_CODE)) {
    throw new InvalidClientMetadataError(`grant_types must include ${GRANT_TYPE_AUTHORIZATION_CODE} or ${GRANT_TYPE_DEVICE_CODE}: no other grant issues a token to a registered client.`);
  }

  // RFC 7591 §2: redirect URIs are required for redirect-based flows only; any given are checked all the same.
  const redirectUris = m.redirect_uris ?? (redirectBased ? undefined : []);
  if (!Array.isArray(redirectUris) || (redirectBased && redirectUris.length === 0) || !redirectUris.every((u) => typeof u === 'string')) {
    throw new InvalidRedirectUriError(redirectBased ? 'redirect_uris must be a non-empty array of strings.' : 'redirect_uris must be an array of strings.');
  }
  if (redirectUris.length > MAX_REDIRECT_URIS) throw new InvalidRedirectUriError(`At most ${MAX_REDIRECT_URIS} redirect URIs may be registered.`);
  for (const uri of redirectUris as string[]) {
    if (uri.length > MAX_REDIRECT_URI_LENGTH) throw new InvalidRedirectUriError(`A redirect URI may have at most ${MAX_REDIRECT_URI_LENGTH} characters.`);
    const check = checkRegistrableRedirectUri(uri);
    if (!check.ok) throw new InvalidRedirectUriError(check.reason);
  }

  // RFC 7591 §2: absent means client_secret_basic.
  const method = (m.token_endpoint_auth_method ?? 'client_secret_basic') as TokenEndpointAuthMethod;
  // private_key_jwt is in token_endpoint_auth_methods_supported because agents authenticate that way; their keys
  // are registered by the operator (`delegate agents register`), never here. The description says so, lest a
  // client reading the metadata take the refusal for a contradiction (found in review).
  if (method === 'private_key_jwt') {
    throw new InvalidClientMetadataError(
      `token_endpoint_auth_method private_key_jwt is for agents, whose keys the operator registers with \`delegate agents register\`, not by dynamic registration; here it must be one of ${OPEN_AUTH_METHODS.join(', ')}.`,
    );
  }
  if (!OPEN_AUTH_METHODS.includes(method)) {
    throw new InvalidClientMetadataError(`token_endpoint_auth_method must be one of ${OPEN_AUTH_METHODS.join(', ')}.`);
  }
  if (m.jwks !== undefined || m.jwks_uri !== undefined) throw new InvalidClientMetadataError('Keys cannot be registered here.');
  // RFC 8252 §8.5: an app on a device keeps no secret, and §8.4 has the server record it as public. A private-use
  // scheme names such an app (policy/redirect-uri.ts), so its client is public, its codes bound by PKCE alone.
  const privateUse = (redirectUris as string[]).map((u) => privateUseScheme(new URL(u))).find((scheme) => scheme !== undefined);
  if (privateUse !== undefined && method !== 'none') {
    throw new InvalidRedirectUriError(`A private-use redirect URI (${privateUse}:) is for an app on a device, which keeps no secret: register it with token_endpoint_auth_method none (RFC 8252 section 8.5).`);
  }

  if (m.scope !== undefined && (typeof m.scope !== 'string' || !isWellFormedScope(m.scope))) {
    throw new InvalidClientMetadataError('scope must be a space-separated list of scope tokens.');
  }
  // A well-formed scope is accepted and not registered, so not echoed (§3.2.1: the response holds what was
  // registered; §2 lets the server replace what a client asks for). The scope a client may get is the one the
  // resource offers and the user approves, at /authorize and on the device's page, whatever it registered:
  // MCP clients register the scope of their first challenge (the SDK sends it) and later step up to more with
  // the same registration, which a registered bound would refuse. Found in review: "admin root" was echoed as
  // registered and bounded nothing.
  const metadata: Record<string, unknown> = {
    redirect_uris: redirectUris,
    token_endpoint_auth_method: method,
    grant_types: grantTypes,
    response_types: responseTypes,
  };
  for (const field of TEXT_FIELDS) {
    const value = m[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length > MAX_TEXT_LENGTH) throw new InvalidClientMetadataError(`${field} must be a string of at most ${MAX_TEXT_LENGTH} characters.`);
    // Shown on the consent page and printed by `delegate grants` and `agents`: found in review, a client_name holding
    // "\r\e[2K…\n" was printed raw and rewrote the terminal line.
    if (hasControlCharacters(value)) throw new InvalidClientMetadataError(`${field} must not contain control characters.`);
    if (PAGE_URL_FIELDS.has(field) && !isPageUrl(value)) {
      throw new InvalidClientMetadataError(`${field} must be an absolute https URL (or http on a loopback address) of at most ${MAX_TEXT_LENGTH} characters.`);
    }
    metadata[field] = value;
  }
  const contacts = stringList(m.contacts, 'contacts');
  if (contacts?.some((c) => c.length > MAX_TEXT_LENGTH)) throw new InvalidClientMetadataError(`Each of contacts may have at most ${MAX_TEXT_LENGTH} characters.`);
  if (contacts?.some(hasControlCharacters)) throw new InvalidClientMetadataError('contacts must not contain control characters.');
  if (contacts) metadata.contacts = contacts;
  if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_METADATA_BYTES) {
    throw new InvalidClientMetadataError(`The registered metadata may take at most ${MAX_METADATA_BYTES} bytes.`);
  }

  return {
    clientId: randomId('cli'),
    clientName: typeof metadata.client_name === 'string' ? metadata.client_name : null,
    kind: method === 'none' ? 'public' : 'confidential',
    secretHash: null,
    redirectUris: redirectUris as string[],
    grantTypes,
    tokenEndpointAuthMethod: method,
    jwks: null,
    resource: null,
    metadata,
    createdAt: now,
  };
}

function stringList(value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string') || value.length > 20) {
    throw new InvalidClientMetadataError(`${name} must be an array of strings.`);
  }
  return value as string[];
}
