// `delegate agents register|list|show`: the administrator's view of the
// agents users can delegate to. `register` is the one place an agent is bound
// to its resource URL; the authorization server signs a statement of its
// identity, which `show` verifies. A registration is put on the audit log
// (`agent_registered`, by cli).
//
// The issuer a statement is signed for and checked against is the one given
// (--issuer, --auth-port), else the one this data directory's servers use: the
// issuer of CalendarAgent's statement, which they sign when they start (and
// which `servers.ts` checks a second address against), else the default.
import { DEFAULT_AGENT_CLIENT_ID } from '../../agent/identity.js';
import { DOWNSTREAM_IS, describeAgent, listAgents, onIssuerOrigin, registerAgent } from '../../authz/agents.js';
import type { AgentProfile, AgentVerification } from '../../authz/agent-statement.js';
import { DEFAULT_HOST, DEFAULT_PORTS, urlsFor, type Paths } from '../../config.js';
import type { ClientRecord, Store } from '../../store/index.js';
import { SCOPE_FREEBUSY_READ, canonicalResource, sameResourceOrLoopbackAlias } from '../../delegation/index.js';
import { readAgentPublicKey } from '../agent-key.js';
import { CommandFailed, EXIT_ERROR, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { namedClient, printable, shown } from '../shown.js';
import { readOnlyNotice, withStore } from './admin-store.js';
import { statementIssuer, warnIfServedElsewhere } from '../served-elsewhere.js';

export interface RegisterAgentArgs {
  paths: Paths;
  /** The authorization server to sign for; undefined: the one the data directory's servers use (`issuerOnRecord`). */
  issuer?: string;
  id: string;
  url: string;
  keyFile: string;
  name: string;
  softwareId: string;
  softwareVersion: string;
  operator: string;
  contact: string;
  description: string;
  limitations: string[];
  scopes: string[];
  /** Calendar backends it reads free/busy time from on a user's behalf. */
  calendars: string[];
  json: boolean;
}

export async function agentsRegisterCommand(args: RegisterAgentArgs, io: CliIo): Promise<number> {
  const publicJwk = await readAgentPublicKey(args.keyFile);
  const profile: AgentProfile = {
    name: args.name,
    softwareId: args.softwareId,
    softwareVersion: args.softwareVersion,
    operator: { name: args.operator, contact: args.contact },
    description: args.description,
    limitations: args.limitations,
  };
  const { client, issuer } = await withStore(args.paths, async (store) => {
    const servedBy = await issuerOnRecord(store);
    const issuer = args.issuer ?? servedBy;
    // registerAgent refuses the issuer it signs for and its origin; an --auth-port of another server leaves this one's to check here.
    if (sameResourceOrLoopbackAlias(args.url, servedBy)) {
      throw new CommandFailed(`The URL ${servedBy} is the authorization server's own, at which this data directory's servers run; an agent needs its own URL.`);
    }
    const servers = `the authorization server (${servedBy}) at which this data directory's servers run`;
    if (onIssuerOrigin(servedBy, args.url)) {
      throw new CommandFailed(`The URL ${canonicalResource(args.url) ?? args.url} is on the origin of ${servers}; an agent needs a URL on an origin of its own.`);
    }
    const atServers = args.calendars.find((calendar) => onIssuerOrigin(servedBy, calendar));
    if (atServers !== undefined) throw new CommandFailed(`The downstream URL ${canonicalResource(atServers) ?? atServers} is on the origin of ${servers}; ${DOWNSTREAM_IS}`);
    const { client } = await registerAgent(
      store,
      issuer,
      {
        clientId: args.id,
        resourceUrl: args.url,
        scopes: args.scopes,
        jwks: { keys: [publicJwk as Record<string, unknown>] },
        downstream: args.calendars.map((resource) => ({ type: 'calendar', resource, scopes: [SCOPE_FREEBUSY_READ] })),
        profile,
      },
      io.now(),
      { by: 'cli' },
    ).catch((error: unknown) => {
      throw new CommandFailed(error instanceof Error ? error.message : String(error));
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return { client, issuer };
  });
  if (args.json) io.stdout.write(`${JSON.stringify({ client_id: client.clientId, resource: client.resource, issuer, agent_statement: client.metadata.agent_statement })}\n`);
  else io.stdout.write(shown`Registered ${args.name} as ${client.clientId}, bound to ${client.resource}; its identity statement is signed for the authorization server at ${issuer}.\n`);
  return EXIT_OK;
}

export async function agentsListCommand(args: { paths: Paths; json: boolean }, io: CliIo): Promise<number> {
  const agents = await withStore(args.paths, (store) => listAgents(store), readOnlyNotice(io));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(agents.map((a) => ({ client_id: a.clientId, name: a.clientName, resource: a.resource })))}\n`);
    return EXIT_OK;
  }
  if (agents.length === 0) io.stderr.write('No agents are registered.\n');
  for (const a of agents) io.stdout.write(shown`${a.clientId}\t${a.clientName ?? ''}\t${a.resource ?? ''}\n`);
  return EXIT_OK;
}

/** `issuer`: the authorization server to check against; undefined: the one the data directory's servers use. */
export async function agentsShowCommand(args: { paths: Paths; issuer?: string; id: string; json: boolean }, io: CliIo): Promise<number> {
  const found = await withStore(
    args.paths,
    async (store) => {
      const issuer = args.issuer ?? (await issuerOnRecord(store));
      const described = await describeAgent(store, issuer, args.id, io.now());
      return described && { ...described, issuer, mismatch: described.verification.ok ? undefined : await issuedElsewhere(store, issuer, described.client, io.now()) };
    },
    readOnlyNotice(io),
  );
  if (!found) throw new CommandFailed(`There is no agent ${args.id}.`);
  const { client, verification, issuer, mismatch } = found;
  // A statement that verifies for another authorization server than the one checked: a port (or --issuer) that is not the registration's, no tampering.
  const reason = verification.ok
    ? undefined
    : mismatch
      ? `it was signed for the authorization server at ${mismatch}, and this checked it against ${issuer}. Give the --auth-port (or --issuer) it was registered with, or register it again`
      : verification.reason;
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({
        client_id: client.clientId,
        resource: client.resource,
        issuer,
        verified: verification.ok,
        ...(verification.ok ? { agent: verification.agent } : { reason, ...(mismatch ? { statement_issuer: mismatch } : {}) }),
        agent_statement: client.metadata.agent_statement,
      })}\n`,
    );
    return verification.ok ? EXIT_OK : EXIT_ERROR;
  }
  if (!verification.ok) {
    io.stdout.write(shown`${client.clientName ? namedClient(client.clientName, client.clientId) : `${client.clientId} (${client.clientId})`} at ${client.resource}\n`);
    io.stderr.write(shown`delegate: The identity statement does not verify: ${reason ?? ''}.\n`);
    return EXIT_ERROR;
  }
  const p = verification.agent.profile;
  io.stdout.write(
    [
      // Quoted, as `grants` and `audit` name a client (namedClient), so a name cannot read as another client's id.
      shown`${namedClient(p.name, client.clientId)} ✓ verified by ${issuer}`,
      shown`  software:    ${p.softwareId} ${p.softwareVersion}`,
      shown`  operator:    ${p.operator.name} <${p.operator.contact}>`,
      shown`  resource:    ${verification.agent.resource}`,
      shown`  does:        ${p.description}`,
      ...p.limitations.map((l, i) => `  ${i === 0 ? 'will not:    ' : '             '}${printable(l)}`),
      shown`  key:         ${verification.agent.keyThumbprint}`,
      '',
    ].join('\n'),
  );
  return EXIT_OK;
}

/**
 * The issuer this data directory's servers use: the one CalendarAgent's
 * statement names (the servers sign it for their issuer when they start),
 * else the default address.
 */
export async function issuerOnRecord(store: Store): Promise<string> {
  const recorded = await store.clientById(DEFAULT_AGENT_CLIENT_ID);
  const issuer = statementIssuer(recorded);
  return issuer ?? urlsFor(DEFAULT_PORTS, DEFAULT_HOST).issuer;
}

/** The issuer the agent's statement verifies for, when that is not `checked`: a mismatch, not a bad statement. */
async function issuedElsewhere(store: Store, checked: string, client: ClientRecord, now: number): Promise<string | undefined> {
  const named = statementIssuer(client);
  if (named === undefined || named === checked) return undefined;
  const again: AgentVerification | undefined = (await describeAgent(store, named, client.clientId, now))?.verification;
  return again?.ok ? named : undefined;
}
