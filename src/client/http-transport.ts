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
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** No answer of CalendarAgent comes near this; a bigger one is refused rather than held in memory. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface HttpTransportOptions {
  /** Sent with every request, e.g. Authorization. */
  headers: Record<string, string>;
  /** Cap on each request, from connecting to the last byte of the answer (ms). */
  timeoutMs: number;
  /** Told every answer's status and WWW-Authenticate header (for the session's scope challenges). */
  onResponse?: (status: number, wwwAuthenticate: string | undefined) => void;
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
  ) {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${url.href} is not an http(s) URL.`);
  }

  async start(): Promise<void> {}

  setProtocolVersion(version: string): void {
    this.protocolVersion = version;
  }

  async send(message: JSONRPCMessage): Promise<void> {
    try {
      const answer = await this.post(JSON.stringify(message));
      for (const received of answer) this.onmessage?.(received);
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
    const headers: Record<string, string> = {
      ...this.options.headers,
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'content-length': String(Buffer.byteLength(body)),
    };
    if (this.sessionId !== undefined) headers['mcp-session-id'] = this.sessionId;
    if (this.protocolVersion !== undefined) headers['mcp-protocol-version'] = this.protocolVersion;
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.options.timeoutMs)]);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = this.url.protocol === 'https:' ? httpsRequest : httpRequest;
      request(this.url, { method: 'POST', headers, signal }, resolve).on('error', reject).end(body);
    });
    const text = await readBody(res);
    const status = res.statusCode ?? 0;
    const wwwAuthenticate = res.headers['www-authenticate'];
    this.options.onResponse?.(status, Array.isArray(wwwAuthenticate) ? wwwAuthenticate.join(', ') : wwwAuthenticate);
    const sessionId = res.headers['mcp-session-id'];
    if (typeof sessionId === 'string' && sessionId !== '') this.sessionId = sessionId;
    if (status < 200 || status > 299) throw new StreamableHTTPError(status, `Error POSTing to endpoint: ${text}`);
    if (status === 202 || text === '') return [];
    const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json') {
      const data = JSON.parse(text) as unknown;
      return (Array.isArray(data) ? data : [data]).map((m) => JSONRPCMessageSchema.parse(m));
    }
    if (type === 'text/event-stream') return eventStreamMessages(text).map((m) => JSONRPCMessageSchema.parse(JSON.parse(m)));
    throw new StreamableHTTPError(-1, `Unexpected content type: ${type || 'none'}`);
  }
}

async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      res.destroy();
      throw new StreamableHTTPError(-1, `The answer is larger than ${MAX_BODY_BYTES} bytes.`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The data of each `message` event of a whole text/event-stream body (HTML Living Standard, server-sent events). */
export function eventStreamMessages(stream: string): string[] {
  const messages: string[] = [];
  for (const block of stream.replace(/\r\n?/g, '\n').split('\n\n')) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line === '' || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon === -1 ? line : line.slice(0, colon);
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length > 0 && event === 'message') messages.push(data.join('\n'));
  }
  return messages;
}
