// A Streamable HTTP client transport (MCP transports spec) for the CLI's
// short sessions with a known bearer token: each JSON-RPC message is one POST
// made with node:http(s), and a JSON or event-stream answer is read whole and
// handed to the SDK's Client. It opens no GET stream (optional in the spec:
// the CLI awaits no server-initiated messages), follows no redirect and
// never authenticates by itself (a 401 or 403 is an error for the session to
// handle, as with the SDK's transport and no auth provider). Why not the
// SDK's StreamableHTTPClientTransport on this path: it needs fetch and
// Headers, and their first use in a process loads undici and compiles its
// WASM HTTP parser, which cost more than the rest of find-slot's start-up
// (docs/internals.md, "Start-up of find-slot").
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { answerMessages, postMessage, UnexpectedAnswer } from './mcp-post.js';
import { resendIfUnanswered, type ServersGone } from './servers-gone.js';

export interface HttpTransportOptions {
  /** Sent with every request, e.g. Authorization. */
  headers: Record<string, string>;
  /** Cap on each request, from connecting to the last byte of the answer (ms). */
  timeoutMs: number;
  /** Told every answer's status and WWW-Authenticate header (for the session's scope challenges). */
  onResponse?: (status: number, wwwAuthenticate: string | undefined) => void;
  /** Told when the agent refuses the connection; the message is then sent once more (servers-gone.ts). */
  serversGone?: ServersGone;
}

export class HttpClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  sessionId?: string;
  private protocolVersion: string | undefined;
  private readonly closing = new AbortController();

  constructor(
    private readonly url: URL,
    private readonly options: HttpTransportOptions,
  ) {}

  async start(): Promise<void> {}

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  async send(message: JSONRPCMessage): Promise<void> {
    try {
      for (const received of await this.post(JSON.stringify(message))) this.onmessage?.(received);
    } catch (error) {
      this.onerror?.(error as Error);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closing.abort();
    this.onclose?.();
  }

  private async post(body: string): Promise<JSONRPCMessage[]> {
    const headers: Record<string, string> = { ...this.options.headers };
    if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion !== undefined) headers['mcp-protocol-version'] = this.protocolVersion;
    // Each send bounded on its own, and ended with the transport (postMessage's bound).
    const send = () => postMessage(this.url, body, headers, this.options.timeoutMs, this.closing.signal);
    let answer;
    try {
      answer = await resendIfUnanswered(send, this.options.serversGone);
    } catch (error) {
      if (error instanceof UnexpectedAnswer) throw new StreamableHTTPError(-1, error.message);
      throw error;
    }
    this.options.onResponse?.(answer.status, answer.wwwAuthenticate);
    if (answer.sessionId !== undefined) this.sessionId = answer.sessionId;
    if (answer.status < 200 || answer.status > 299) throw new StreamableHTTPError(answer.status, `Error POSTing to endpoint: ${answer.text}`);
    if (answer.status === 202) return [];
    try {
      return answerMessages(answer).map((m) => JSONRPCMessageSchema.parse(m));
    } catch (error) {
      if (error instanceof UnexpectedAnswer) throw new StreamableHTTPError(-1, error.message);
      throw error;
    }
  }
}
