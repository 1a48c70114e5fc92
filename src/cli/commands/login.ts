// `delegate login`: signs in through the browser and approves CalendarAgent
// even when a cached delegation would do, then says what was authorized:
// the agent, the scopes in words, and until when. Refuses while
// DELEGATE_TOKEN is set (gh's rule): that token would be used, not this login.
import { delegateToken, systemTimeZone } from '../../config.js';
import { login } from '../../client/session.js';
import { CommandFailed, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { authorizationLines } from '../output.js';
import { withAgentAccess, type AgentAccessArgs } from './agent-access.js';

export async function loginCommand(args: AgentAccessArgs, io: CliIo): Promise<number> {
  if (delegateToken(io.env) !== undefined) {
    throw new CommandFailed(
      'DELEGATE_TOKEN is set, and delegate uses it instead of any stored sign-in. To sign in and store a delegation, first unset DELEGATE_TOKEN.',
    );
  }
  const summary = await withAgentAccess(args, io, (session) => login(session));
  io.stdout.write(`${authorizationLines(summary, systemTimeZone(io.env)).join('\n')}\n`);
  return EXIT_OK;
}
