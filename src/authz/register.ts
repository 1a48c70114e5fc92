// POST /register: open dynamic client registration (RFC 7591) for the apps a
// user runs, such as MCP clients. Redirect URIs must be https, or http on a
// loopback address (RFC 8252 §7.3). Clients that authenticate with keys
// (agents) are created by an administrator, never here.
import type { FastifyInstance } from 'fastify';
import { GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, isValidScopeToken } from '../delegation/index.js';
import type { ClientRecord, TokenEndpointAuthMethod } from '../store/index.js';
import type { AuthContext } from './context.js';
import { hashSecret, randomId, randomSecret } from './crypto.js';
import { InvalidClientMetadataError, InvalidRedirectUriError, replyWithError } from './errors.js';
import { checkRegistrableRedirectUri } from './policy/redirect-uri.js';
import { hasControlCharacters } from '../terminal-text.js';
import { GRANT_TYPE_DEVICE_CODE } from './device.js';

const OPEN_AUTH_METHODS: readonly TokenEndpointAuthMethod[] = ['none', 'client_secret_basic', 'client_secret_post'];
const OPEN_GRANT_TYPES = [GRANT_TYPE_AUTHORIZATION_CODE, GRANT_TYPE_REFRESH_TOKEN, GRANT_TYPE_DEVICE_CODE];
const MAX_REDIRECT_URIS = 10;
const TEXT_FIELDS = ['client_name', 'client_uri', 'logo_uri', 'tos_uri', 'policy_uri', 'software_id', 'software_version'] as const;

export function registerRegistration(app: FastifyInstance, ctx: AuthContext): void {
  app.post('/register', async (req, reply) => {
    try {
      if (!req.headers['content-type']?.toLowerCase().startsWith('application/json')) {
        throw new InvalidClientMetadataError('Registration requests must be application/json.');
      }
      const client = buildClient(req.body, ctx.now());
      const secret = client.tokenEndpointAuthMethod === 'none' ? undefined : randomSecret();
      if (secret) client.secretHash = hashSecret(secret);
      await ctx.store.createClient(client);
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

  // RFC 7591 §2: redirect URIs are required for redirect-based flows only; any given are checked all the same.
  const redirectUris = m.redirect_uris ?? (redirectBased ? undefined : []);
  if (!Array.isArray(redirectUris) || (redirectBased && redirectUris.length === 0) || !redirectUris.every((u) => typeof u === 'string')) {
    throw new InvalidRedirectUriError(redirectBased ? 'redirect_uris must be a non-empty array of strings.' : 'redirect_uris must be an array of strings.');
  }
  if (redirectUris.length > MAX_REDIRECT_URIS) throw new InvalidRedirectUriError(`At most ${MAX_REDIRECT_URIS} redirect URIs may be registered.`);
  for (const uri of redirectUris as string[]) {
    const check = checkRegistrableRedirectUri(uri);
    if (!check.ok) throw new InvalidRedirectUriError(check.reason);
  }

  // RFC 7591 §2: absent means client_secret_basic.
  const method = (m.token_endpoint_auth_method ?? 'client_secret_basic') as TokenEndpointAuthMethod;
  if (!OPEN_AUTH_METHODS.includes(method)) {
    throw new InvalidClientMetadataError(`token_endpoint_auth_method must be one of ${OPEN_AUTH_METHODS.join(', ')}.`);
  }
  if (m.jwks !== undefined || m.jwks_uri !== undefined) throw new InvalidClientMetadataError('Keys cannot be registered here.');

  if (m.scope !== undefined && (typeof m.scope !== 'string' || !m.scope.split(' ').every(isValidScopeToken))) {
    throw new InvalidClientMetadataError('scope must be a space-separated list of scope tokens.');
  }
  const metadata: Record<string, unknown> = {
    redirect_uris: redirectUris,
    token_endpoint_auth_method: method,
    grant_types: grantTypes,
    response_types: responseTypes,
  };
  if (typeof m.scope === 'string') metadata.scope = m.scope;
  for (const field of TEXT_FIELDS) {
    const value = m[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length > 512) throw new InvalidClientMetadataError(`${field} must be a string of at most 512 characters.`);
    // Shown on the consent page and printed by `delegate grants` and `agents`: found in review, a client_name holding
    // "\r\e[2K…\n" was printed raw and rewrote the terminal line.
    if (hasControlCharacters(value)) throw new InvalidClientMetadataError(`${field} must not contain control characters.`);
    metadata[field] = value;
  }
  const contacts = stringList(m.contacts, 'contacts');
  if (contacts?.some(hasControlCharacters)) throw new InvalidClientMetadataError('contacts must not contain control characters.');
  if (contacts) metadata.contacts = contacts;

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
