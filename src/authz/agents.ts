// Registering an agent: an administrator's act, never open registration. An
// agent is a confidential client that authenticates with private_key_jwt, is
// bound to the one resource URL it serves (set here and nowhere else), and
// declares what it reaches downstream on a user's behalf. The authorization
// server signs a statement of the agent's identity over its metadata and key.
import { isDeepStrictEqual } from 'node:util';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { GRANT_TYPE_TOKEN_EXCHANGE, canonicalResource, isValidScopeToken, SCOPE_TOKEN_WORDS, sameOriginOrLoopbackAlias, sameResourceOrLoopbackAlias } from '../delegation/index.js';
import type { AgentSave, ClientRecord, DownstreamAccess, ResourceRecord, Store } from '../store/index.js';
import { signAgentStatement, verifyAgentStatement, type AgentProfile, type AgentVerification } from './agent-statement.js';
import { DEFAULT_LIFETIMES } from './context.js';
import { currentKey, loadKeyRing, type KeyRing } from './keys.js';

export interface AgentRegistration {
  clientId: string;
  /** The canonical URL of the resource the agent serves. */
  resourceUrl: string;
  /** Scopes a user can grant at that resource. */
  scopes: string[];
  /** The agent's public keys for private_key_jwt. */
  jwks: { keys: Record<string, unknown>[] };
  downstream: DownstreamAccess[];
  profile: AgentProfile;
}

const CLIENT_ID = /^[a-z0-9][a-z0-9._-]{1,63}$/;

/**
 * Creates or updates the agent's client and its resource, and (re)signs its
 * identity statement. With `record`, the registration is put on the audit log
 * (`agent_registered`): an agent registered here can act in users' actor
 * chains and report to /audit. Its keys are named by thumbprint only. With
 * `record.onlyIfMoved` (the servers' setup, which re-registers CalendarAgent at
 * each start), only a registration that moves the agent is recorded.
 *
 * A registration at another URL than the agent's own on record is a move: the
 * old URL's resource goes, with the live grants for it, in the same transaction
 * (Store.saveAgent), each revocation with its `grant_revoked` record. The move
 * is returned, with the number of grants it ended.
 */
export async function registerAgent(
  store: Store,
  issuer: string,
  agent: AgentRegistration,
  now: number,
  record?: { by: string; onlyIfMoved?: boolean },
): Promise<{ client: ClientRecord; move?: AgentMove }> {
  if (!CLIENT_ID.test(agent.clientId)) throw new Error('An agent id is 2–64 lower-case letters, digits, dots, dashes or underscores.');
  const resourceUrl = canonicalResource(agent.resourceUrl);
  if (!resourceUrl) throw new Error(`The agent's resource ${agent.resourceUrl} is not an absolute http(s) URL.`);
  if (agent.jwks.keys.length === 0) throw new Error('An agent needs a public key to authenticate with.');
  // RFC 6749 §3.3: each scope a scope-token, as /authorize and /device_authorization read a request's scope. Found in
  // review (regress21e): 'agenda:write ' and 'x"y' were stored, so no request could name them, and /authorize's
  // invalid_scope listed them run together ("offers only: agenda:write  x'y").
  const malformed = agent.scopes.find((scope) => !isValidScopeToken(scope));
  if (malformed !== undefined) throw new Error(`${JSON.stringify(malformed)} is not a scope: ${SCOPE_TOKEN_WORDS}`);
  const existing = await store.clientById(agent.clientId);
  if (existing && existing.kind !== 'agent') throw new Error(`The client id ${agent.clientId} belongs to a client that is not an agent.`);
  await refuseTakenUrl(store, issuer, agent, resourceUrl);
  await refuseDownstream(store, issuer, agent);
  // Before anything is written: a key that cannot be named must not leave a registration off the record.
  const thumbprints = record ? await Promise.all(agent.jwks.keys.map((key) => calculateJwkThumbprint(key as JWK))) : [];
  const movedFrom = existing?.resource && existing.resource !== resourceUrl ? existing.resource : undefined;
  const recordAs = record && (!record.onlyIfMoved || movedFrom !== undefined) ? record : undefined;

  const keys = await loadKeyRing(store, () => now, DEFAULT_LIFETIMES.accessTokenSec * 1000);
  // Setup's registration of CalendarAgent at every start (bootstrap.ts: "a later start with the same settings changes
  // nothing"): what is on record already, its statement signed by the current key over the same claims, is left as it
  // is. Found in review: every `serve` re-signed the statement, one refused for a port in use too. An administrator's
  // `agents register` (recorded) writes and records as before.
  if (existing && movedFrom === undefined && (!record || record.onlyIfMoved) && (await registeredAsIs(store, issuer, keys, existing, agent, resourceUrl))) {
    return { client: existing };
  }
  const sign = async () => {
    const { kid } = await keys.current();
    return { kid, statement: await signAgentStatement(issuer, keys, { clientId: agent.clientId, resource: resourceUrl, jwks: agent.jwks, profile: agent.profile }, Math.floor(now / 1000)) };
  };
  let { kid: signedWith, statement } = await sign();
  const fields = agentRecords(agent, resourceUrl);
  const client: ClientRecord = { ...fields.client, metadata: { ...fields.client.metadata, agent_statement: statement }, createdAt: existing?.createdAt ?? now };
  const grantsRevoked = await store.saveAgent(
    {
      client,
      resource: { ...fields.resource, createdAt: now },
      ...(movedFrom !== undefined ? { movedFrom: moveOf(agent.clientId, movedFrom, resourceUrl, recordAs?.by ?? 'administrator') } : {}),
      ...(recordAs
        ? {
            record: (grantsRevoked: string[]) => ({
              event: 'agent_registered',
              client: agent.clientId,
              resource: resourceUrl,
              detail: {
                by: recordAs.by,
                name: agent.profile.name,
                replaced: existing !== undefined,
                scopes: agent.scopes,
                downstream: agent.downstream.map((d) => d.resource),
                key_thumbprints: thumbprints,
                ...(movedFrom !== undefined ? { moved_from: movedFrom, grants_revoked: grantsRevoked } : {}),
              },
            }),
          }
        : {}),
    },
    now,
  );
  // A rotation (`delegate keys rotate`) that committed between the signature and the write re-signed the
  // statements it found, not this one: signed again with the key now current, which the rotation made so.
  for (let attempt = 0; attempt < 3 && currentKey(await store.signingKeys())?.kid !== signedWith; attempt++) {
    ({ kid: signedWith, statement } = await sign());
    client.metadata = { ...client.metadata, agent_statement: statement };
    await store.updateClient(client);
  }
  return { client, ...(movedFrom !== undefined ? { move: { from: movedFrom, to: resourceUrl, grantsRevoked: grantsRevoked.length } } : {}) };
}

/**
 * Whether `existing` and its resource record are what registering `agent` at `resourceUrl` would write, and its
 * statement verifies, with the current key, for the same profile, key and resource.
 */
async function registeredAsIs(store: Store, issuer: string, keys: KeyRing, existing: ClientRecord, agent: AgentRegistration, resourceUrl: string): Promise<boolean> {
  const wanted = agentRecords(agent, resourceUrl);
  const { createdAt: _created, metadata: { agent_statement: _statement, ...metadata }, ...client } = existing;
  if (!isDeepStrictEqual({ ...client, metadata }, wanted.client)) return false;
  const resource = await store.resourceByUrl(resourceUrl);
  if (!resource) return false;
  const { createdAt: _since, ...onRecord } = resource;
  if (!isDeepStrictEqual(onRecord, wanted.resource)) return false;
  const verified = await verifyAgentStatement(issuer, (kid) => keys.statementKey(kid), existing);
  return verified.ok && verified.agent.resource === resourceUrl && isDeepStrictEqual(verified.agent.profile, agent.profile);
}

/** The client record (without its statement) and the resource record that registering `agent` at `resourceUrl` writes, but for their times. */
function agentRecords(agent: AgentRegistration, resourceUrl: string): { client: Omit<ClientRecord, 'createdAt'>; resource: Omit<ResourceRecord, 'createdAt'> } {
  return {
    client: {
      clientId: agent.clientId,
      clientName: agent.profile.name,
      kind: 'agent',
      secretHash: null,
      redirectUris: [],
      grantTypes: [GRANT_TYPE_TOKEN_EXCHANGE],
      tokenEndpointAuthMethod: 'private_key_jwt',
      jwks: agent.jwks,
      resource: resourceUrl,
      // The registration metadata (RFC 7591 §3.2.1 echo).
      metadata: {
        client_name: agent.profile.name,
        software_id: agent.profile.softwareId,
        software_version: agent.profile.softwareVersion,
        token_endpoint_auth_method: 'private_key_jwt',
        grant_types: [GRANT_TYPE_TOKEN_EXCHANGE],
      },
    },
    resource: { url: resourceUrl, name: agent.profile.name, scopes: agent.scopes, agentClientId: agent.clientId, downstream: agent.downstream },
  };
}

/** An agent registered at another URL than the one on record: its old and new URLs, and how many live grants for the old one ended. */
export interface AgentMove {
  from: string;
  to: string;
  grantsRevoked: number;
}

/**
 * What a move ends. Found in review: an agent re-registered at a new URL left the old URL's resource bound to it,
 * so /authorize went on issuing tokens for a URL nobody serves (the agent exchanges and introspects only tokens
 * for its URL on record). The record goes, and with it every live grant for that URL: the user approved the agent
 * at that address (the tokens' audience, RFC 8707), its tokens there can never be used again, and, the URL being
 * free, a grant kept alive would mint tokens for whichever agent registers there next, which the user never
 * approved. Revoked, the grant also ends the calendar tokens exchanged from it, at every resource server.
 */
function moveOf(clientId: string, from: string, to: string, by: string): NonNullable<AgentSave['movedFrom']> {
  return {
    url: from,
    reason: `the agent ${clientId} moved to ${to}`,
    grantRecord: (grant) => ({
      event: 'grant_revoked',
      user: grant.userId,
      client: grant.clientId,
      grant: grant.id,
      resource: grant.resource,
      detail: { by, via: 'agent moved', agent: clientId, moved_to: to },
    }),
  };
}

/**
 * Refuses a URL that is already something else's: the binding would make the agent the recipient of tokens for
 * that audience (it may introspect and exchange them) and would overwrite that resource's record. Found in review:
 * an agent registered at the calendar backend's URL (a resource bound to no agent) replaced its record, so that
 * /authorize, which sends only agents' tokens there, issued a plain user token for the calendar, and the new
 * agent could introspect and exchange CalendarAgent's calendar tokens. So: the issuer's origin (its own endpoints,
 * and the tokens with aud = the issuer that a handed or may_act token is); any resource on record that is not
 * this agent's own, bound to another agent or to none; and any URL an agent reaches downstream (a calendar backend
 * that is not on record as a resource yet), this one's included. Canonical forms (RFC 8707), every loopback host
 * counted as one (found in review: `http://localhost:<issuer port>/mcp` passed for the issuer 127.0.0.1, and
 * `http://localhost:<backend port>` for the backend at 127.0.0.1, though both reach the same listener).
 */
async function refuseTakenUrl(store: Store, issuer: string, agent: AgentRegistration, resourceUrl: string): Promise<void> {
  if (sameResourceOrLoopbackAlias(issuer, resourceUrl)) throw new Error(`The URL ${resourceUrl} is this authorization server's own; an agent needs its own URL.`);
  if (onIssuerOrigin(issuer, resourceUrl)) {
    throw new Error(`The URL ${resourceUrl} is on the origin of this authorization server (${issuer}), which serves its own endpoints and tokens there; an agent needs a URL on an origin of its own.`);
  }
  const resources = await store.listResources();
  const bound = resources.find((r) => r.agentClientId !== agent.clientId && sameResourceOrLoopbackAlias(r.url, resourceUrl));
  if (bound) {
    throw new Error(
      bound.agentClientId
        ? `The resource ${resourceUrl}${alias(resourceUrl, bound.url)} is already bound to the agent ${bound.agentClientId}.`
        : `The URL ${resourceUrl}${alias(resourceUrl, bound.url)} is already a resource of this server (${bound.name}), not an agent's; an agent needs its own URL.`,
    );
  }
  const reaches = (downstream: readonly DownstreamAccess[]) => downstream.some((d) => sameResourceOrLoopbackAlias(d.resource, resourceUrl));
  if (reaches(agent.downstream)) throw new Error(`The agent cannot reach its own URL ${resourceUrl} downstream.`);
  for (const other of resources) {
    if (other.agentClientId !== agent.clientId && reaches(other.downstream)) {
      throw new Error(`The URL ${resourceUrl} is what the agent ${other.agentClientId ?? other.url} reaches downstream on users' behalf; an agent needs its own URL.`);
    }
  }
  const backend = calendarOriginOf(resources, agent, resourceUrl);
  if (backend !== undefined) throw new Error(`The URL ${resourceUrl} is on the origin of ${backend}; an agent needs a URL on an origin of its own.`);
}

/**
 * A calendar backend (a resource bound to no agent, or what an agent reaches downstream, this one included) on whose
 * origin `url` is, named for a message; undefined when there is none. The backend's listener answers every path of its
 * origin, as the issuer's does: an agent at another path there would have its users' tokens sent to the backend, and
 * whatever serves that URL shares an origin with the place calendar tokens are presented. Found in review: refused at
 * the backend's URL only, an agent at `<backend>/mcp` was registered. An agent on another agent's origin is not refused
 * (one gateway may serve several MCP servers).
 */
function calendarOriginOf(resources: readonly ResourceRecord[], agent: Pick<AgentRegistration, 'clientId' | 'downstream'>, url: string): string | undefined {
  const backend = resources.find((r) => r.agentClientId === null && sameOriginOrLoopbackAlias(r.url, url));
  if (backend) return `the calendar backend ${backend.url} (a resource of this server, ${backend.name})`;
  const own = agent.downstream.find((d) => sameOriginOrLoopbackAlias(d.resource, url));
  if (own) return `${own.resource}, which the agent reads downstream`;
  for (const other of resources) {
    const read = other.agentClientId !== agent.clientId ? other.downstream.find((d) => sameOriginOrLoopbackAlias(d.resource, url)) : undefined;
    if (read) return `${read.resource}, which the agent ${other.agentClientId ?? other.url} reaches downstream on users' behalf`;
  }
  return undefined;
}

/**
 * Refuses a downstream (what the agent reads on users' behalf, the audience of the tokens it gets by exchange) that
 * is the authorization server or on its origin, or another agent's URL: the exchange would issue the agent tokens
 * for the issuer, or for another agent, which that agent would take as a user's delegation to it. Found in review:
 * `--calendar-url` was compared with neither. Canonical forms (RFC 8707), every loopback host counted as one.
 */
async function refuseDownstream(store: Store, issuer: string, agent: AgentRegistration): Promise<void> {
  const agentsAt: Array<{ url: string; clientId: string }> = [];
  for (const r of await store.listResources()) if (r.agentClientId) agentsAt.push({ url: r.url, clientId: r.agentClientId });
  for (const c of await store.listClients('agent')) if (c.resource) agentsAt.push({ url: c.resource, clientId: c.clientId });
  for (const d of agent.downstream) {
    const url = canonicalResource(d.resource);
    if (!url) throw new Error(`The downstream URL ${d.resource} is not an absolute http(s) URL.`);
    if (onIssuerOrigin(issuer, url)) throw new Error(`The downstream URL ${url} is on the origin of this authorization server (${issuer}); ${DOWNSTREAM_IS}`);
    const other = agentsAt.find((a) => a.clientId !== agent.clientId && sameResourceOrLoopbackAlias(a.url, url));
    if (other !== undefined) throw new Error(`The downstream URL ${url}${alias(url, other.url)} is the URL of the agent ${other.clientId}; ${DOWNSTREAM_IS}`);
    // The same collision as an agent on a backend's origin (calendarOriginOf), registered the other way round.
    const near = agentsAt.find((a) => a.clientId !== agent.clientId && sameOriginOrLoopbackAlias(a.url, url));
    if (near !== undefined) throw new Error(`The downstream URL ${url} is on the origin of the agent ${near.clientId} (${near.url}); ${DOWNSTREAM_IS}`);
  }
}

/** Names the URL on record when a refused URL is it by another loopback name. */
function alias(url: string, onRecord: string): string {
  return url === onRecord ? '' : ` (${onRecord}, by another loopback name)`;
}

export const DOWNSTREAM_IS = 'an agent reads a calendar backend downstream, not an agent or the authorization server.';

/**
 * Whether `url` is on the issuer's origin (scheme, host and port, canonical forms): the issuer itself included, and
 * any loopback host for a loopback issuer (`http://localhost:8410` for `http://127.0.0.1:8410`: one listener).
 */
export function onIssuerOrigin(issuer: string, url: string): boolean {
  return sameOriginOrLoopbackAlias(issuer, url);
}

export async function listAgents(store: Store): Promise<ClientRecord[]> {
  return store.listClients('agent');
}

/** An agent's registration, with its identity statement verified against the server's keys as they are now. */
export async function describeAgent(store: Store, issuer: string, clientId: string, now: number): Promise<{ client: ClientRecord; verification: AgentVerification } | undefined> {
  const client = await store.clientById(clientId);
  if (!client || client.kind !== 'agent') return undefined;
  const keys = await loadKeyRing(store, () => now, DEFAULT_LIFETIMES.accessTokenSec * 1000);
  return { client, verification: await verifyAgentStatement(issuer, (kid) => keys.statementKey(kid), client) };
}
