// The agent identity statement: a JWT the authorization server signs over an
// agent's registered metadata (after the paper's "agent ID token": name,
// software id and version, operator and contact, what it does and what it
// will not do) and the thumbprint of the agent's key (`cnf.jkt`). The
// consent page shows it as verified; `delegate agents show` verifies it.
import { SignJWT, calculateJwkThumbprint, jwtVerify, decodeProtectedHeader, type CryptoKey as JoseCryptoKey, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import type { ClientRecord } from '../store/index.js';
import type { KeyRing } from './keys.js';

export const AGENT_STATEMENT_TYP = 'agent-statement+jwt';

export interface AgentProfile {
  name: string;
  softwareId: string;
  softwareVersion: string;
  operator: { name: string; contact: string };
  /** What the agent does, in a sentence. */
  description: string;
  /** What it will not do. */
  limitations: string[];
}

export interface VerifiedAgent {
  clientId: string;
  resource: string;
  profile: AgentProfile;
  /** RFC 7638 thumbprint of the agent's key, as the statement binds it. */
  keyThumbprint: string;
  issuedAt: number;
}

export type AgentVerification = { ok: true; agent: VerifiedAgent } | { ok: false; reason: string };

/** The thumbprint of the (first) key an agent client authenticates with. */
export async function agentKeyThumbprint(client: Pick<ClientRecord, 'jwks'>): Promise<string | undefined> {
  const key = client.jwks?.keys[0];
  return key ? calculateJwkThumbprint(key as JWK) : undefined;
}

export async function signAgentStatement(
  issuer: string,
  keys: KeyRing,
  agent: { clientId: string; resource: string; jwks: ClientRecord['jwks']; profile: AgentProfile },
  nowSec: number,
): Promise<string> {
  const jkt = await agentKeyThumbprint(agent);
  if (!jkt) throw new Error(`The agent ${agent.clientId} has no key to bind its statement to.`);
  const { kid, privateKey } = await keys.current();
  return new SignJWT({
    resource: agent.resource,
    agent: {
      name: agent.profile.name,
      software_id: agent.profile.softwareId,
      software_version: agent.profile.softwareVersion,
      operator: agent.profile.operator,
      description: agent.profile.description,
      limitations: agent.profile.limitations,
    },
    cnf: { jkt },
  })
    .setProtectedHeader({ alg: SIGNING_ALG, typ: AGENT_STATEMENT_TYP, kid })
    .setIssuer(issuer)
    .setSubject(agent.clientId)
    .setIssuedAt(nowSec)
    .sign(privateKey);
}

/**
 * Verifies an agent's statement against this server's keys and the agent's
 * registration as it is now: signature, issuer, subject, the bound resource,
 * and the key it authenticates with.
 */
export async function verifyAgentStatement(
  issuer: string,
  getKey: (kid: string) => Promise<JoseCryptoKey | undefined>,
  client: ClientRecord,
): Promise<AgentVerification> {
  const statement = client.metadata.agent_statement;
  if (typeof statement !== 'string') return { ok: false, reason: 'the agent has no identity statement' };
  let kid: string | undefined;
  try {
    kid = decodeProtectedHeader(statement).kid;
  } catch {
    return { ok: false, reason: 'the statement is not a JWT' };
  }
  const key = kid ? await getKey(kid) : undefined;
  if (!key) return { ok: false, reason: 'the statement was not signed by this server' };
  let payload;
  try {
    ({ payload } = await jwtVerify(statement, key, { algorithms: [SIGNING_ALG], typ: AGENT_STATEMENT_TYP, issuer, subject: client.clientId }));
  } catch {
    return { ok: false, reason: 'the statement’s signature or claims do not verify' };
  }
  const jkt = await agentKeyThumbprint(client);
  const cnf = payload.cnf as { jkt?: unknown } | undefined;
  if (!jkt || cnf?.jkt !== jkt) return { ok: false, reason: 'the statement is bound to another key than the agent’s' };
  if (payload.resource !== client.resource) return { ok: false, reason: 'the statement names another resource than the agent’s' };
  const a = payload.agent as Record<string, unknown> | undefined;
  if (!a || typeof a.name !== 'string') return { ok: false, reason: 'the statement describes no agent' };
  return {
    ok: true,
    agent: {
      clientId: client.clientId,
      resource: String(payload.resource),
      keyThumbprint: jkt,
      issuedAt: payload.iat ?? 0,
      profile: {
        name: a.name,
        softwareId: String(a.software_id ?? ''),
        softwareVersion: String(a.software_version ?? ''),
        operator: (a.operator as AgentProfile['operator']) ?? { name: '', contact: '' },
        description: String(a.description ?? ''),
        limitations: Array.isArray(a.limitations) ? a.limitations.map(String) : [],
      },
    },
  };
}
