// Clients named by the URL of their metadata document (OAuth Client ID
// Metadata Documents, draft-ietf-oauth-client-id-metadata-document; MCP
// authorization 2025-11-25 prefers them to dynamic registration). The document
// is fetched (client-document-fetch.ts), checked for the fields MCP requires
// and as a registration is (register.ts), and kept as a client record, so
// grants, the audit log, the pages and `delegate grants` treat the client as
// any other. How long a fetch stands follows the document's Cache-Control,
// within bounds; a document that changes where codes may go ends the grants
// made under the old one; a stored client whose document's host gives no
// answer for now is served as stored, for a day at most.
import { BoundedMap } from '../bounded-map.js';
import type { ClientRecord, Store } from '../store/index.js';
import { registeredName } from './app-name.js';
import { fetchClientDocument, DocumentFetchError, type DocumentFetchOptions } from './client-document-fetch.js';
import { InvalidClientError, OAuthError } from './errors.js';
import { FailureCounter, RateLimits, type RateLimitRule } from './rate-limit.js';
import { checkClientIdUrl, isClientIdUrlAttempt, isDocumentClient } from './policy/client-id-url.js';
import { buildClient, registrationRecord } from './register.js';

export interface ClientDocumentOptions extends Partial<DocumentFetchOptions> {
  /** Shortest and longest time a fetched document is used before it is fetched again, whatever its Cache-Control says. */
  minCacheSec?: number;
  maxCacheSec?: number;
  /** Fetches started for one source of requests that may fail in a window before it may start no more (FETCH_FAILURE_LIMIT). */
  fetchFailureLimit?: RateLimitRule;
}

/** The draft (Maximum Response Size) recommends reading at most 5 kilobytes. */
export const MAX_DOCUMENT_BYTES = 5 * 1024;
/** A person waits on /authorize while the document is fetched: a document that takes longer is refused. */
export const DOCUMENT_TIMEOUT_MS = 3_000;
/** Without Cache-Control, a document stands 10 minutes; never less than 1 minute (a client's request and its /token
 * call share one fetch), never more than a day (the draft's Client Information Discovery: re-fetch periodically). */
const DEFAULT_CACHE_SEC = 600;
const MIN_CACHE_SEC = 60;
const MAX_CACHE_SEC = 86_400;
/**
 * A stored client whose document's host gives no answer to the fetch made for this lookup (a timeout, a failed
 * connection, a 5xx or 429, name servers that fail) is served as stored until its last good fetch is this old: a
 * day, the longest a fetch stands. Found in review: a document host down for a minute refused its client's sign-ins.
 * A fetch not made ('busy') serves nothing stale: found in review (regress20f), a requester that burned its own
 * failure budget, or sources holding every fetch permit, had a removed or changed document ignored for a day. A
 * document that answers and cannot be used (a name that no longer exists too) ends this at once.
 */
export const STALE_CLIENT_MS = MAX_CACHE_SEC * 1000;
/**
 * Fetches of new clients' documents started for one source that get no answer (the deadline passed, the name
 * servers failed, the connection failed, a 5xx), in a window, before that source may start no more until the window moves on: such a fetch holds
 * one of the source's fetch permits (client-document-fetch.ts) for up to the whole deadline, and was counted nowhere.
 * A document that answers and cannot be used is not counted: it holds nothing, and whoever is writing one tries again.
 */
export const FETCH_FAILURE_LIMIT: RateLimitRule = Object.freeze({ limit: 10, windowMs: 60_000 });
/** Documents whose freshness is remembered: a bound on memory; one forgotten is fetched again. */
const CACHED_DOCUMENTS = 1_000;
/** Sources whose failed fetches are counted (the oldest forgotten first), as register.ts counts new clients. */
const COUNTED_SOURCES = 1_000;

/**
 * The auth methods refused by the draft's Credential and Key Material Restrictions: they rest on a shared secret,
 * which a published document cannot set up.
 */
const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

/** The client a metadata document describes, or throws the OAuthError that says why it cannot be one. */
export function clientFromDocument(clientId: string, document: unknown, now: number): ClientRecord {
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new InvalidClientError('the document is not a JSON object');
  const d = document as Record<string, unknown>;
  // The draft's Client ID Metadata Document: its client_id equals the URL it was fetched from, compared as plain strings.
  if (d.client_id !== clientId) throw new InvalidClientError('the client_id in the document is not the URL it was fetched from');
  // MCP authorization 2025-11-25 (Client ID Metadata Documents): the document MUST include at least client_id,
  // client_name and redirect_uris, and the AS MUST validate that it does. A client of the device grant alone lists
  // redirect URIs all the same (it is never sent to them); an empty list is none, as a name that shows nothing is.
  if (typeof d.client_name !== 'string' || registeredName({ clientName: d.client_name }) === undefined) {
    throw new InvalidClientError('the document has no client_name, which MCP requires of a client metadata document');
  }
  if (!Array.isArray(d.redirect_uris) || d.redirect_uris.length === 0) {
    throw new InvalidClientError('the document lists no redirect_uris, which MCP requires of a client metadata document');
  }
  // Credential and Key Material Restrictions: no shared secrets. private_key_jwt would need the document's keys (and
  // a jwks_uri fetched as carefully); it is not supported here, and said so rather than taken as `none`.
  if (d.client_secret !== undefined || d.client_secret_expires_at !== undefined) throw new InvalidClientError('a metadata document must not hold a client_secret');
  const method = d.token_endpoint_auth_method ?? 'none';
  if (typeof method === 'string' && SECRET_METHODS.has(method)) {
    throw new InvalidClientError(`token_endpoint_auth_method ${method} rests on a shared secret, which a metadata document cannot establish; use none`);
  }
  if (method !== 'none') {
    throw new InvalidClientError(`token_endpoint_auth_method ${String(method)} is not supported for metadata-document clients here; use none`);
  }
  // Absent, RFC 7591 would mean client_secret_basic, which the draft rules out: such a document is a public client.
  const client = buildClient({ ...d, token_endpoint_auth_method: 'none' }, now);
  return { ...client, clientId, metadata: { client_id: clientId, ...client.metadata } };
}

/** What makes a client able to get codes and tokens: when any of it changes, the grants made under the old document end. */
/** A request's source (request-source.ts) as a record's `source_address`: `loopback`, an address or a /64, ` (a web page)` for a page's. */
function sourceShown(source: string): string {
  return source.replace(/^address:/, '').replace(/ pages$/, ' (a web page)');
}

/** What a client's `client_registered` record holds of it, to tell whether a document's new version changed it. */
function recordedFields(client: ClientRecord): string {
  return JSON.stringify([client.clientName, client.redirectUris, client.grantTypes, client.tokenEndpointAuthMethod]);
}

function trustFingerprint(client: ClientRecord): string {
  return JSON.stringify([client.redirectUris, client.grantTypes, client.tokenEndpointAuthMethod, client.kind]);
}

/** When a document's last good fetch was, and until when it stands (ms). */
interface Fetched {
  at: number;
  freshUntil: number;
}

/** One fetch of a document, shared by the requests that asked for it while it was under way. */
interface Described extends Fetched {
  client: ClientRecord;
  /** Whether a request has written it to the store (then the others only read it). */
  kept: boolean;
}

export class ClientDocuments {
  readonly #store: Store;
  readonly #now: () => number;
  readonly #fetch: DocumentFetchOptions;
  readonly #minSec: number;
  readonly #maxSec: number;
  /** url → its last good fetch. Documents themselves live in the store. */
  readonly #fetched = new BoundedMap<string, Fetched>(CACHED_DOCUMENTS);
  /** Fetches under way, so requests that arrive together share one. */
  readonly #pending = new Map<string, Promise<Described>>();
  /** url → the last of the writes of its client, which take turns. */
  readonly #writing = new Map<string, Promise<void>>();
  readonly #newClients: RateLimits;
  readonly #failedFetches: FailureCounter;

  /**
   * `newClients`: the budget of new clients per source of the requests that name them, the one open registration
   * spends too (register.ts newClientBudget, REGISTRATION_LIMITS), for the same reason: anyone can make this server
   * fetch a document and store its client (one /token request is enough), and a client that never gets a grant is
   * swept a day later; without a bound, one requester naming endless URLs would grow the database as fast as it
   * asks. One budget, not one each, or a source adds twice as many (found in review, s21). Counted by the requester
   * (request-source.ts, as /register counts), not by the address the document came from: found in review, sites on
   * shared hosting (a CDN, a pages host) share one address, and one of them used up the budget of every other there.
   * None given: no limit.
   */
  constructor(store: Store, now: () => number, options: ClientDocumentOptions = {}, newClients: RateLimits = new RateLimits([], now)) {
    this.#store = store;
    this.#now = now;
    this.#newClients = newClients;
    this.#failedFetches = new FailureCounter(options.fetchFailureLimit ?? FETCH_FAILURE_LIMIT, now, COUNTED_SOURCES);
    this.#fetch = {
      privateHosts: (options.privateHosts ?? []).map((h) => h.toLowerCase()),
      timeoutMs: options.timeoutMs ?? DOCUMENT_TIMEOUT_MS,
      maxBytes: options.maxBytes ?? MAX_DOCUMENT_BYTES,
      ...(options.ca !== undefined ? { ca: options.ca } : {}),
      ...(options.resolve ? { resolve: options.resolve } : {}),
    };
    this.#minSec = options.minCacheSec ?? MIN_CACHE_SEC;
    this.#maxSec = options.maxCacheSec ?? MAX_CACHE_SEC;
  }

  /**
   * The client a client_id names: a stored one, or for a Client Identifier URL, the client its metadata document
   * describes. A URL the operator registered as a client itself (an agent, say: the draft's Pre-Registering Client
   * Identifier URLs) stays that client. Undefined for an unknown id that is no URL; throws InvalidClientError for a URL that cannot be used.
   * `requester`: the source of the request that names the client (request-source.ts), whose budget a new client counts against.
   */
  async find(clientId: string, requester: string): Promise<ClientRecord | undefined> {
    if (!isClientIdUrlAttempt(clientId)) return this.#store.clientById(clientId);
    const stored = await this.#store.clientById(clientId);
    if (stored && !isDocumentClient(stored)) return stored;
    const fetched = this.#fetched.get(clientId);
    if (stored && fetched !== undefined && fetched.freshUntil > this.#now()) return stored;
    // Stored, its freshness lapsed (or forgotten): fetched again from the re-fetch pool, whoever asks.
    return this.#documentClient(clientId, requester, stored);
  }

  /**
   * The client a URL client_id names, from its document fetched now. Throws InvalidClientError saying why when the id
   * is not a usable Client Identifier URL or its document cannot be used (the draft's Metadata Discovery Errors and
   * Metadata Caching: the request is aborted; nothing is cached or stored), unless the `stored` client may be served
   * as it is (STALE_CLIENT_MS: only when its host gave no answer). Requests for one URL at once share its fetch, and only that: each is a request of its
   * own for what follows (a new client counted against its own source). Found in review: they shared the whole of
   * it, so a request whose source had used up its budget refused every request waiting with it.
   */
  async #documentClient(clientId: string, requester: string, stored: ClientRecord | undefined): Promise<ClientRecord> {
    const check = checkClientIdUrl(clientId);
    if (!check.ok) throw new InvalidClientError(`${check.reason}.`);
    let described: Described;
    try {
      described = await this.#sharedFetch(clientId, check.url, stored ? undefined : requester);
    } catch (error) {
      const lastGood = this.#fetched.get(clientId);
      const hostSilent = error instanceof DocumentFetchError && error.failure === 'unanswered';
      if (stored && lastGood !== undefined && hostSilent && this.#now() - lastGood.at < STALE_CLIENT_MS) return stored;
      if (error instanceof DocumentFetchError || error instanceof OAuthError) {
        throw new InvalidClientError(`The client metadata document at ${clientId} cannot be used: ${error.message.replace(/\.$/, '')}.`);
      }
      throw error;
    }
    return this.#inTurn(clientId, () => this.#keep(described, requester));
  }

  /** `requester` undefined: a stored client's document, fetched again apart from any requester's budget. */
  #sharedFetch(clientId: string, url: URL, requester: string | undefined): Promise<Described> {
    let pending = this.#pending.get(clientId);
    if (!pending) {
      pending = this.#describe(clientId, url, requester).finally(() => this.#pending.delete(clientId));
      this.#pending.set(clientId, pending);
    }
    return pending;
  }

  /**
   * Fetches and reads the document, for `requester` (whose fetch permits and failure budget it takes), or, for a
   * stored client (`requester` undefined), from the re-fetch pool (client-document-fetch.ts), charged to no one:
   * found in review, a requester's own state (its failures, its permits) decided whether a stored client was checked.
   * A new client's fetch that gets no answer is counted against its source; a document that answers and cannot be
   * used ends the serving of its stored client.
   */
  async #describe(clientId: string, url: URL, requester: string | undefined): Promise<Described> {
    const wait = requester === undefined ? 0 : this.#failedFetches.retryAfterMs(requester);
    if (wait > 0) {
      throw new DocumentFetchError(`too many client metadata documents fetched for requests from this address lately did not answer; try again in ${Math.ceil(wait / 1000)} seconds`, 'busy');
    }
    try {
      const fetched = await fetchClientDocument(url, this.#fetch, requester ?? 'stored client', requester === undefined);
      const at = this.#now();
      const client = clientFromDocument(clientId, fetched.body, at);
      const lifetime = Math.min(this.#maxSec, Math.max(this.#minSec, fetched.maxAgeSec ?? DEFAULT_CACHE_SEC));
      return { client, at, freshUntil: at + lifetime * 1000, kept: false };
    } catch (error) {
      const failure = error instanceof DocumentFetchError ? error.failure : 'refused';
      if (failure === 'unanswered' && requester !== undefined) this.#failedFetches.fail(requester);
      if (failure === 'refused') this.#fetched.delete(clientId);
      throw error;
    }
  }

  /** Writes a fetched document's client to the store, as `requester` asked for it, and returns the client stored. */
  async #keep(described: Described, requester: string): Promise<ClientRecord> {
    const { client } = described;
    // Read now, after the fetch: what the document is compared with is the record as it stands.
    const stored = await this.#store.clientById(client.clientId);
    if (!stored) await this.#create(client, requester);
    else if (!described.kept) {
      if (trustFingerprint(stored) !== trustFingerprint(client)) await this.#endGrants(client.clientId, described.at);
      // A change in what `client_registered` recorded (its name, where its codes go, its grants and auth method) is on
      // the log too, in the same transaction: found in review (s24new3), the log kept only the first document's values.
      const changed = recordedFields(stored) !== recordedFields(client);
      const record = changed ? { event: registrationRecord(client, sourceShown(requester), 'client_updated'), at: described.at } : undefined;
      await this.#store.updateClient({ ...client, createdAt: stored.createdAt }, record);
    }
    described.kept = true;
    this.#fetched.set(client.clientId, { at: described.at, freshUntil: described.freshUntil });
    return (await this.#store.clientById(client.clientId)) ?? client;
  }

  /** Runs `work` after the work for `key` already waiting: two requests sharing a fetch would both create the client. */
  async #inTurn<T>(key: string, work: () => Promise<T>): Promise<T> {
    const turn = (this.#writing.get(key) ?? Promise.resolve()).then(work);
    const done = turn.then(() => {}, () => {});
    this.#writing.set(key, done);
    try {
      return await turn;
    } finally {
      if (this.#writing.get(key) === done) this.#writing.delete(key);
    }
  }

  /** Stores a new client, counted against the requester's source (counted before the write, taken back if it fails). */
  async #create(client: ClientRecord, source: string): Promise<void> {
    const wait = this.#newClients.retryAfterMs(source);
    if (wait > 0) {
      throw new InvalidClientError(`This server has accepted too many new clients from this address lately; try again in ${Math.ceil(wait / 1000)} seconds.`);
    }
    // On the audit log as a client registered at /register is (found at stop 24: a document's client left no record).
    await this.#newClients.spend(source, () => this.#store.createClient(client, { event: registrationRecord(client, sourceShown(source)), at: client.createdAt }));
  }

  /**
   * The draft's Changes in Client Metadata: a document may change under a grant, and the AS may end grants made
   * under the old one. Here, when its redirect URIs, grant types or auth method change: consent was given to a
   * client whose codes went to the old addresses, and a grant would otherwise let the new ones get codes without
   * asking (a domain that changed hands, or a document rewritten by an intruder). Names and other display fields
   * change without this.
   */
  async #endGrants(clientId: string, now: number): Promise<void> {
    for (const grant of await this.#store.activeGrantsOfClient(clientId, now)) {
      await this.#store.revokeGrant(grant.id, now, 'the client metadata document changed', {
        event: 'grant_revoked',
        user: grant.userId,
        client: clientId,
        grant: grant.id,
        resource: grant.resource,
        detail: { by: 'server', reason: 'client metadata document changed its redirect_uris, grant_types or token_endpoint_auth_method' },
      });
    }
  }
}
