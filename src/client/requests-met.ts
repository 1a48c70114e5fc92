// What a sign-in's requests met, for saying a failure the MCP SDK reports
// badly. An answer the SDK could not parse: it checks the documents of
// discovery, registration and tokens with zod schemas and throws the schema's
// error as it is, whose message is the JSON array of its issues (found in
// review, s24bcp: OpenID discovery metadata without jwks_uri was printed as
// that array); the last address asked is the one whose answer failed, as the
// SDK parses each answer before it asks anything else. And a server not
// reached (nobody listening, a certificate not trusted), which the SDK's
// discovery takes for a server without metadata.
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { printableClipped } from '../terminal-text.js';
import { ClientError, certificateErrorCode, networkErrorCode } from './errors.js';

/** How many of the schema's findings the line names. */
const ISSUES_SHOWN = 3;

export class RequestsMet {
  private url: string | undefined;
  /** The first request that reached no server (networkErrorCode, certificateErrorCode). */
  unreached: unknown;

  observe(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      this.url = String(url);
      try {
        return await fetchFn(url, init);
      } catch (error) {
        this.unreached ??= networkErrorCode(error) !== undefined || certificateErrorCode(error) !== undefined ? error : undefined;
        throw error;
      }
    };
  }

  /** A schema's refusal of the last answer as a ClientError naming its address; undefined for any other error. */
  unreadable(error: unknown): ClientError | undefined {
    const issues = schemaIssues(error);
    if (issues === undefined) return undefined;
    const shown = issues.slice(0, ISSUES_SHOWN).map(describeIssue);
    if (issues.length > ISSUES_SHOWN) shown.push(`${issues.length - ISSUES_SHOWN} more`);
    const from = this.url === undefined ? 'A server' : printableClipped(this.url, 200);
    return new ClientError('AUTHORIZATION_FAILED', `${from} answered with a document that is not what the protocol asks for (${shown.join('; ')}); delegate does not use it.`, {
      cause: error,
    });
  }
}

interface SchemaIssue {
  path?: unknown;
  message?: unknown;
}

/** The issues of a zod error (by its shape: the SDK's zod is not loaded here for instanceof), else undefined. */
function schemaIssues(error: unknown): SchemaIssue[] | undefined {
  if (!(error instanceof Error) || error.name !== 'ZodError') return undefined;
  const issues = (error as { issues?: unknown }).issues;
  return Array.isArray(issues) && issues.length > 0 ? (issues as SchemaIssue[]) : undefined;
}

function describeIssue(issue: SchemaIssue): string {
  const path = Array.isArray(issue.path) && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
  const message = typeof issue.message === 'string' ? issue.message.replace(/^Invalid input: /, '') : 'invalid';
  return printableClipped(`${path}${message}`, 120);
}
