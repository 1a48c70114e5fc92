// `delegate agents register|list|show`: the administrator's view of the
// agents users can delegate to. `register` is the one place an agent is bound
// to its resource URL; the authorization server signs a statement of its
// identity, which `show` verifies. A registration is put on the audit log
// (`agent_registered`, by cli).
import { describeAgent, listAgents, registerAgent } from '../../authz/agents.js';
import type { AgentProfile } from '../../authz/agent-statement.js';
import type { Paths } from '../../config.js';
import { SCOPE_FREEBUSY_READ } from '../../delegation/index.js';
import { readAgentPublicKey } from '../agent-key.js';
import { CommandFailed, EXIT_ERROR, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { printable, shown } from '../shown.js';
import { readOnlyNotice, withStore } from './admin-store.js';

export interface RegisterAgentArgs {
  paths: Paths;
  issuer: string;
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
  const client = await withStore(args.paths, (store) =>
    registerAgent(
      store,
      args.issuer,
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
    }),
  );
  if (args.json) io.stdout.write(`${JSON.stringify({ client_id: client.clientId, resource: client.resource, agent_statement: client.metadata.agent_statement })}\n`);
  else io.stdout.write(`Registered ${args.name} as ${client.clientId}, bound to ${client.resource}.\n`);
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

export async function agentsShowCommand(args: { paths: Paths; issuer: string; id: string; json: boolean }, io: CliIo): Promise<number> {
  const found = await withStore(args.paths, (store) => describeAgent(store, args.issuer, args.id, io.now()), readOnlyNotice(io));
  if (!found) throw new CommandFailed(`There is no agent ${args.id}.`);
  const { client, verification } = found;
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({
        client_id: client.clientId,
        resource: client.resource,
        verified: verification.ok,
        ...(verification.ok ? { agent: verification.agent } : { reason: verification.reason }),
        agent_statement: client.metadata.agent_statement,
      })}\n`,
    );
    return verification.ok ? EXIT_OK : EXIT_ERROR;
  }
  if (!verification.ok) {
    io.stdout.write(shown`${client.clientName ?? client.clientId} (${client.clientId}) at ${client.resource}\n`);
    io.stderr.write(shown`delegate: The identity statement does not verify: ${verification.reason}.\n`);
    return EXIT_ERROR;
  }
  const p = verification.agent.profile;
  io.stdout.write(
    [
      shown`${p.name} (${client.clientId}) ✓ verified by ${args.issuer}`,
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
