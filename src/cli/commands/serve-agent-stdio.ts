// `delegate serve-agent --stdio`: CalendarAgent for MCP clients that spawn
// their servers. It acts under this user's stored delegation (the same one
// find-slot uses): the servers it needs are used if running or started in
// this process, and when no delegation is stored it signs in at once through
// the browser (the link on stderr), while the client's requests are already
// answered. Its stdout carries the MCP protocol and nothing else; everything
// for the person goes to stderr, the agent's log lines (JSON, at --log-level)
// too.
import { validAccessToken } from '../../client/credentials.js';
import { ensureDelegation } from '../../client/session.js';
import type { LogLevelName } from '../../config.js';
import { EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { errorText } from '../errors.js';
import { withAgentAccess, type AgentAccessArgs } from './agent-access.js';

export async function serveAgentStdioCommand(args: AgentAccessArgs, io: CliIo, logLevel: LogLevelName): Promise<number> {
  // Whoever started us may be a desktop app: there is no terminal to ask, but a browser to open.
  return withAgentAccess({ ...args, mayPrompt: true, interactiveLogin: true }, io, async (session, { urls, paths }) => {
    // The agent's key only: the servers' modules (and the database driver) stay unloaded when the servers run elsewhere.
    const [{ serveAgentOverStdio }, { loadOrCreateAgentKey }, { remoteAuditSink }, { createLogger }] = await Promise.all([
      import('../../agent/stdio.js'),
      import('../../agent/identity.js'),
      import('../../resource/audit-remote.js'),
      import('../../http/logging.js'),
    ]);
    const identity = await loadOrCreateAgentKey(paths.agentKey);

    // One sign-in at a time; a failed one is tried again by the next call.
    let signingIn: Promise<void> | undefined;
    const delegation = (): Promise<void> => {
      signingIn ??= ensureDelegation(session).catch((error: unknown) => {
        signingIn = undefined;
        throw error;
      });
      return signingIn;
    };
    if (session.envToken === undefined) {
      delegation().catch((error: unknown) => io.stderr.write(errorText(error, args.debug)));
    }

    const agent = await serveAgentOverStdio({
      issuer: urls.issuer,
      calendarUrl: urls.calendarUrl,
      clientId: identity.clientId,
      privateKey: identity.privateJwk,
      now: () => io.now(),
      logger: createLogger(logLevel, io.stderr),
      // Every tool call goes on the authorization server's audit log, reported as this agent.
      resourceUrl: urls.agentUrl,
      audit: remoteAuditSink({ issuer: urls.issuer, clientId: identity.clientId, privateKey: identity.privateJwk, now: () => io.now() }),
      callerToken: async () => {
        if (session.envToken === undefined) await delegation();
        return validAccessToken(session);
      },
    });
    io.stderr.write('CalendarAgent is serving MCP on stdio, acting under your stored delegation.\n');
    await Promise.race([agent.closed, io.untilInterrupted()]);
    await agent.close();
    return EXIT_OK;
  });
}
