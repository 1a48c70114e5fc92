// Registering an agent: an administrator's act, never open registration. An
// agent is a confidential client that authenticates with private_key_jwt, is
// bound to the one resource URL it serves (so it may exchange only tokens
// issued for it), and declares what it reaches downstream on a user's behalf.
import { GRANT_TYPE_TOKEN_EXCHANGE } from '../delegation/index.js';
import type { ClientRecord, DownstreamAccess, Store } from '../store/index.js';

export interface AgentRegistration {
  clientId: string;
  name: string;
  /** The canonical URL of the resource the agent serves. */
  resourceUrl: string;
  /** Scopes a user can grant at that resource. */
  scopes: string[];
  /** The agent's public keys for private_key_jwt. */
  jwks: { keys: Record<string, unknown>[] };
  downstream: DownstreamAccess[];
}

/** Creates or updates the agent's client and its resource. */
export async function registerAgent(store: Store, agent: AgentRegistration, now: number): Promise<ClientRecord> {
  const existing = await store.clientById(agent.clientId);
  if (existing && existing.kind !== 'agent') throw new Error(`The client id ${agent.clientId} belongs to a client that is not an agent.`);
  const client: ClientRecord = {
    clientId: agent.clientId,
    clientName: agent.name,
    kind: 'agent',
    secretHash: null,
    redirectUris: [],
    grantTypes: [GRANT_TYPE_TOKEN_EXCHANGE],
    tokenEndpointAuthMethod: 'private_key_jwt',
    jwks: agent.jwks,
    resource: agent.resourceUrl,
    metadata: { client_name: agent.name, token_endpoint_auth_method: 'private_key_jwt', grant_types: [GRANT_TYPE_TOKEN_EXCHANGE] },
    createdAt: existing?.createdAt ?? now,
  };
  if (existing) await store.updateClient(client);
  else await store.createClient(client);
  await store.upsertResource({
    url: agent.resourceUrl,
    name: agent.name,
    scopes: agent.scopes,
    agentClientId: agent.clientId,
    downstream: agent.downstream,
    createdAt: now,
  });
  return client;
}
