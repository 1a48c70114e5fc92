// `delegate serve-agent --stdio`: CalendarAgent for MCP clients that spawn
// their servers. It acts under this user's stored delegation (the same one
// find-slot uses): the servers it needs are used if running or started in
// this process, and when no delegation is stored it signs in at once through
// the browser (the link on stderr), while the client's requests are already
// answered. A tool call that needs that sign-in waits a few seconds for it,
// then answers with a tool error saying to approve in the browser or to run
// `delegate login` (never with the link), so that the MCP client does not
// time the call out; the sign-in goes on, and the next call uses it. Its stdout carries the MCP protocol and nothing else; everything
// for the person goes to stderr, the agent's log lines (JSON, at --log-level)
// too.
import { validAccessToken } from '../../client/credentials.js';
import { resendIfUnanswered, type ServersGone } from '../../client/servers-gone.js';
import type { AuditSink } from '../../resource/audit.js';
import type { SessionOptions } from '../../client/session.js';
import type { LogLevelName } from '../../config.js';
import { EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { errorText } from '../errors.js';
import { withAgentAccess, type AgentAccessArgs } from './agent-access.js';
import { loginCommandLine, sameSetupCommandLine } from './mcp-config.js';

export async function serveAgentStdioCommand(args: AgentAccessArgs, io: CliIo, logLevel: LogLevelName, calendarTimeoutMs?: number): Promise<number> {
  // Whoever started us may be a desktop app: there is no terminal to ask, but a browser to open.
  return withAgentAccess({ ...args, mayPrompt: true, interactiveLogin: true }, io, async (session, { urls, paths }) => {
    // It finds the servers by port (program.ts gives it no --agent-url): they are known.
    if (urls === undefined) throw new UsageError('serve-agent --stdio finds the servers by their ports; it takes no agent URL.');
    // The agent's key only: the servers' modules (and the database driver) stay unloaded when the servers run elsewhere.
    const [{ serveAgentOverStdio }, { loadOrCreateAgentKey }, { remoteAuditSink }, { createLogger }] = await Promise.all([
      import('../../agent/stdio.js'),
      import('../../agent/identity.js'),
      import('../../resource/audit-remote.js'),
      import('../../http/logging.js'),
    ]);
    const identity = await loadOrCreateAgentKey(paths.agentKey);

    // One token lookup at a time (with the sign-in, when one is needed); a failed one is tried again by the next call.
    const approval = approvalWatch(session);
    let acquiring: Promise<string> | undefined;
    let unanswered = false; // a call stopped waiting for this lookup: nobody hears how it ends but stderr
    const accessToken = (): Promise<string> => {
      acquiring ??= validAccessToken(session)
        .catch((error: unknown) => {
          if (unanswered) io.stderr.write(errorText(error, args.debug));
          throw error;
        })
        .finally(() => {
          acquiring = undefined;
          unanswered = false;
          approval.ended();
        });
      return acquiring;
    };
    if (session.envToken === undefined) {
      unanswered = true; // signs in at once if nothing usable is stored; no call waits for this one yet
      accessToken().catch(() => undefined);
    }
    const advice = approvalAdvice(loginCommandLine(args, io));
    /**
     * The token for a call. A call that finds a sign-in waiting for the person
     * waits a few seconds for an approval already under way, then answers with
     * a tool error that says what to do, well before the MCP client gives up on
     * it (the SDK's default is 60 s); the sign-in goes on, and the call asked
     * after the approval succeeds. The sign-in link itself is never in that
     * answer: the model reads tool results, and the link approves as the owner.
     */
    const tokenForCall = async (): Promise<string> => {
      if (approval.isWaiting()) {
        // The person may have followed the advice: a `delegate login` in a terminal stored a delegation meanwhile,
        // which the sign-in under way (still waiting for its browser) would not see.
        const { presentLoginUrl: _signsIn, ...cacheOnly } = session;
        const stored = await validAccessToken(cacheOnly).catch(() => undefined);
        if (stored !== undefined) return stored;
      }
      const token = accessToken();
      let stopWaiting: (() => void) | undefined;
      const tooLong = new Promise<never>((_resolve, reject) => {
        let unsubscribe: (() => void) | undefined;
        const timer = setTimeout(() => {
          unsubscribe = approval.whenWaiting(() => reject(new StdioApprovalNeeded(advice)));
        }, APPROVAL_WAIT_MS);
        stopWaiting = () => {
          clearTimeout(timer);
          unsubscribe?.();
        };
      });
      try {
        return await Promise.race([token, tooLong]);
      } catch (error) {
        if (error instanceof StdioApprovalNeeded) unanswered = true;
        throw error;
      } finally {
        stopWaiting?.();
      }
    };

    const agent = await serveAgentOverStdio({
      issuer: urls.issuer,
      calendarUrl: urls.calendarUrl,
      clientId: identity.clientId,
      privateKey: identity.privateJwk,
      now: () => io.now(),
      logger: createLogger(logLevel, io.stderr),
      ...(calendarTimeoutMs !== undefined ? { calendarTimeoutMs } : {}),
      // Every tool call goes on the authorization server's audit log, reported as this agent.
      resourceUrl: urls.agentUrl,
      audit: resendingAudit(
        remoteAuditSink({ issuer: urls.issuer, clientId: identity.clientId, privateKey: identity.privateJwk, now: () => io.now() }),
        session.serversGone,
      ),
      // Servers another process started (another stdio agent, `delegate serve`) may stop while this one runs: a refused
      // exchange, calendar read or audit report brings them back (here, if none runs) and is sent again.
      ...(session.serversGone ? { serversGone: session.serversGone } : {}),
      // Nobody here authorizes again on a refusal (over HTTP the MCP client does): name the command that does. Under
      // DELEGATE_TOKEN no sign-in does (that token comes first): the token given must be replaced.
      reauthorize: (scopes) => {
        const login = loginCommandLine(args, io, (scopes ?? []).flatMap((s) => ['--scope', s]));
        if (session.envToken !== undefined) return environmentTokenAdvice(login, sameSetupCommandLine(args, io, ['token']), scopes);
        return `Run \`${login}\` in a terminal, then ask again.`;
      },
      callerToken: async () => {
        if (session.envToken !== undefined) return validAccessToken(session);
        return tokenForCall();
      },
    });
    io.stderr.write(`CalendarAgent is serving MCP on stdio, acting under ${session.envToken !== undefined ? 'the token in DELEGATE_TOKEN' : 'your stored delegation'}.\n`);
    await Promise.race([agent.closed, io.untilInterrupted()]);
    await agent.close();
    return EXIT_OK;
  });
}

/** How long a tool call waits for a sign-in under way before it answers with what to do (MCP clients give up after 60 s). */
export const APPROVAL_WAIT_MS = 8_000;

/** What a tool call says while CalendarAgent waits for the person's approval: never the link (see tokenForCall). */
export function approvalAdvice(loginCommand: string): string {
  return (
    'CalendarAgent needs your approval before it can read your calendar, and has opened a sign-in page in your browser. ' +
    `Approve it there; if no browser window opened, run \`${loginCommand}\` in a terminal instead. Then ask again.`
  );
}

/**
 * What a refusal says when the agent acts under DELEGATE_TOKEN (the token is
 * expired, revoked, or lacks `scopes`): `delegate login` alone changes
 * nothing, since that token is used before any sign-in; the token given must
 * be replaced where the MCP client sets it, or removed. Never the token itself.
 */
export function environmentTokenAdvice(loginCommand: string, tokenCommand: string, scopes?: readonly string[]): string {
  const allowing = scopes && scopes.length > 0 ? ` that allows ${scopes.join(' ')}` : '';
  return (
    'CalendarAgent acts under the token in DELEGATE_TOKEN (set where your MCP client starts this server), which comes before any sign-in, so signing in again does not change it. ' +
    `Put a new token${allowing} in DELEGATE_TOKEN there (in a terminal: \`${loginCommand}\`, then \`${tokenCommand}\` prints one), ` +
    'or remove DELEGATE_TOKEN to use your stored sign-in; then restart this server and ask again.'
  );
}

class StdioApprovalNeeded extends Error {}

/**
 * Whether a sign-in link is out and waiting for the person: from the moment
 * it is shown until the browser comes back or the sign-in ends. A call that
 * has waited long enough is told when that is (at once if it already is).
 */
function approvalWatch(session: SessionOptions) {
  let waiting = false;
  const listeners = new Set<() => void>();
  const present = session.presentLoginUrl;
  if (present) {
    session.presentLoginUrl = async (url) => {
      waiting = true;
      for (const listener of listeners) listener();
      await present(url);
    };
  }
  const settled = session.loginSettled;
  session.loginSettled = () => {
    waiting = false;
    settled?.();
  };
  return {
    ended: () => {
      waiting = false;
    },
    isWaiting: () => waiting,
    /** Calls `listener` once a link waits for the person (now, if one does); returns how to stop listening. */
    whenWaiting(listener: () => void): () => void {
      if (waiting) {
        listener();
        return () => undefined;
      }
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

/** Each report sent again, newly signed (its client assertion is single-use), when the authorization server did not answer it. */
function resendingAudit(sink: AuditSink, serversGone: ServersGone | undefined): AuditSink {
  return (record, context) => resendIfUnanswered(() => sink(record, context), serversGone);
}
