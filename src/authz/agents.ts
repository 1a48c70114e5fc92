// Registering an agent: an administrator's act, never open registration. An
// agent is a confidential client that authenticates with private_key_jwt, is
// bound to the one resource URL it serves (set here and nowhere else), and
// declares what it reaches downstream on a user's behalf. The authorization
// server signs a statement of the agent's identity over its metadata and key.
import { calculateJwkThumbprint, type JWK } from 'jose';
import { GRANT_TYPE_TOKEN_EXCHANGE, canonicalResource } from '../delegation/index.js';
import type { ClientRecord, DownstreamAccess, Store } from '../store/index.js';
import { signAgentStatement, verifyAgentStatement, type AgentProfile, type AgentVerification } from './agent-statement.js';
import { DEFAULT_LIFETIMES } from './context.js';
import { currentKey, loadKeyRing } from './keys.js';

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
 * chains and report to /audit. Its keys are named by thumbprint only.
 */
export async function registerAgent(store: Store, issuer: string, agent: AgentRegistration, now: number, record?: { by: string }): Promise<ClientRecord> {
  if (!CLIENT_ID.test(agent.clientId)) throw new Error('An agent id is 2–64 lower-case letters, digits, dots, dashes or underscores.');
  const resourceUrl = canonicalResource(agent.resourceUrl);
  if (!resourceUrl) throw new Error(`The agent's resource ${agent.resourceUrl} is not an absolute http(s) URL.`);
  if (agent.jwks.keys.length === 0) throw new Error('An agent needs a public key to authenticate with.');
  const existing = await store.clientById(agent.clientId);
  if (existing && existing.kind !== 'agent') throw new Error(`The client id ${agent.clientId} belongs to a client that is not an agent.`);
  await refuseTakenUrl(store, issuer, agent, resourceUrl);
  // Before anything is written: a key that cannot be named must not leave a registration off the record.
  const thumbprints = record ? await Promise.all(agent.jwks.keys.map((key) => calculateJwkThumbprint(key as JWK))) : [];

  const keys = await loadKeyRing(store, () => now, DEFAULT_LIFETIMES.accessTokenSec * 1000);
  const sign = async () => {
    const { kid } = await keys.current();
    return { kid, statement: await signAgentStatement(issuer, keys, { clientId: agent.clientId, resource: resourceUrl, jwks: agent.jwks, profile: agent.profile }, Math.floor(now / 1000)) };
  };
  let { kid: signedWith, statement } = await sign();
  const client: ClientRecord = {
    clientId: agent.clientId,
    clientName: agent.profile.name,
    kind: 'agent',
    secretHash: null,
    redirectUris: [],
    grantTypes: [GRANT_TYPE_TOKEN_EXCHANGE],
    tokenEndpointAuthMethod: 'private_key_jwt',
    jwks: agent.jwks,
    resource: resourceUrl,
    metadata: {
      client_name: agent.profile.name,
      software_id: agent.profile.softwareId,
      software_version: agent.profile.softwareVersion,
      token_endpoint_auth_method: 'private_key_jwt',
      grant_types: [GRANT_TYPE_TOKEN_EXCHANGE],
      agent_statement: statement,
    },
    createdAt: existing?.createdAt ?? now,
  };
  if (existing) await store.updateClient(client);
  else await store.createClient(client);
  await store.upsertResource({
    url: resourceUrl,
    name: agent.profile.name,
    scopes: agent.scopes,
    agentClientId: agent.clientId,
    downstream: agent.downstream,
    createdAt: now,
  });
  // A rotation (`delegate keys rotate`) that committed between the signature and the write re-signed the
  // statements it found, not this one: signed again with the key now current, which the rotation made so.
  for (let attempt = 0; attempt < 3 && currentKey(await store.signingKeys())?.kid !== signedWith; attempt++) {
    ({ kid: signedWith, statement } = await sign());
    client.metadata = { ...client.metadata, agent_statement: statement };
    await store.updateClient(client);
  }
  if (record) {
    await store.appendAudit(
      {
        event: 'agent_registered',
        client: agent.clientId,
        resource: resourceUrl,
        detail: {
          by: record.by,
          name: agent.profile.name,
          replaced: existing !== undefined,
          scopes: agent.scopes,
          downstream: agent.downstream.map((d) => d.resource),
          key_thumbprints: thumbprints,
        },
      },
      now,
    );
  }
  return client;
}

/**
 * Refuses a URL that is already something else's: the binding would make the agent the recipient of tokens for
 * that audience (it may introspect and exchange them) and would overwrite that resource's record. Found in review:
 * an agent registered at the calendar backend's URL (a resource bound to no agent) replaced its record, so that
 * /authorize, which sends only agents' tokens there, issued a plain user token for the calendar, and the new
 * agent could introspect and exchange CalendarAgent's calendar tokens. So: the issuer itself; any resource on
 * record that is not this agent's own, bound to another agent or to none; and any URL an agent reaches downstream
 * (a calendar backend that is not on record as a resource yet), this one's included. Canonical forms (RFC 8707).
 */
async function refuseTakenUrl(store: Store, issuer: string, agent: AgentRegistration, resourceUrl: string): Promise<void> {
  if (canonicalResource(issuer) === resourceUrl) throw new Error(`The URL ${resourceUrl} is this authorization server's own; an agent needs its own URL.`);
  const bound = await store.resourceByUrl(resourceUrl);
  if (bound && bound.agentClientId !== agent.clientId) {
    throw new Error(
      bound.agentClientId
        ? `The resource ${resourceUrl} is already bound to the agent ${bound.agentClientId}.`
        : `The URL ${resourceUrl} is already a resource of this server (${bound.name}), not an agent's; an agent needs its own URL.`,
    );
  }
  const reaches = (downstream: readonly DownstreamAccess[]) => downstream.some((d) => canonicalResource(d.resource) === resourceUrl);
  if (reaches(agent.downstream)) throw new Error(`The agent cannot reach its own URL ${resourceUrl} downstream.`);
  for (const other of await store.listResources()) {
    if (other.agentClientId !== agent.clientId && reaches(other.downstream)) {
      throw new Error(`The URL ${resourceUrl} is what the agent ${other.agentClientId ?? other.url} reaches downstream on users' behalf; an agent needs its own URL.`);
    }
  }
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
