// One JSON-RPC message POSTed to an MCP Streamable HTTP endpoint with
// node:http(s), and its answer read whole: the status, the headers a client
// acts on, and the messages of a JSON or event-stream body. Shared by the
// CLI's transport for the SDK's Client (http-transport.ts) and the quick tool
// call (quick-call.ts); it imports nothing of the SDK, and no fetch: the first
// fetch in a process loads undici and compiles its WASM HTTP parser.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { refuseForeignListener } from '../http/listener-owner.js';
import { deadline } from './bounded-fetch.js';

/** No answer of CalendarAgent comes near this; a bigger one is refused rather than held in memory. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

export interface PostedAnswer {
  status: number;
  wwwAuthenticate: string | undefined;
  sessionId: string | undefined;
  /** The media type, lower case, without parameters ('' when absent). */
  contentType: string;
  text: string;
}

/** A body that is not what the transports spec allows (JSON, or an event stream), or too large. */
export class UnexpectedAnswer extends Error {}

export async function postMessage(url: URL, body: string, headers: Record<string, string>, timeoutMs: number, also?: AbortSignal): Promise<PostedAnswer> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`${url.href} is not an http(s) URL.`);
  // A timer of our own (bounded-fetch.ts's deadline), never AbortSignal.any() over AbortSignal.timeout(), ended once the
  // answer is in whole or the request failed: its listener on `also` (a transport's closing signal, which lives as long
  // as the transport) goes with it (found in review, s26: each stayed for the whole bound, and eleven requests within
  // it printed MaxListenersExceededWarning).
  const bound = deadline(timeoutMs, url.href, also);
  try {
    return await postBounded(url, body, headers, bound.signal);
  } finally {
    bound.dispose();
  }
}

async function postBounded(url: URL, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<PostedAnswer> {
  refuseForeignListener(url); // before the bearer token leaves
  const all = {
    ...headers,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'content-length': String(Buffer.byteLength(body)),
  };
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    request(url, { method: 'POST', headers: all, signal }, resolve).on('error', reject).end(body);
  });
  // Cut mid-body by the signal, the response fails as a lost connection ("aborted"): the signal's reason is what happened.
  const text = await readBody(res).catch((error: unknown) => {
    throw signal.aborted ? signal.reason : error;
  });
  const www = res.headers['www-authenticate'];
  const sessionId = res.headers['mcp-session-id'];
  return {
    status: res.statusCode ?? 0,
    wwwAuthenticate: Array.isArray(www) ? www.join(', ') : www,
    sessionId: typeof sessionId === 'string' && sessionId !== '' ? sessionId : undefined,
    contentType: (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase(),
    text,
  };
}

/** The JSON-RPC messages of a 2xx answer's body, not yet checked against any schema. */
export function answerMessages(answer: PostedAnswer): unknown[] {
  if (answer.text === '') return [];
  if (answer.contentType === 'application/json') {
    const data = JSON.parse(answer.text) as unknown;
    return Array.isArray(data) ? data : [data];
  }
  if (answer.contentType === 'text/event-stream') return eventStreamMessages(answer.text).map((m) => JSON.parse(m) as unknown);
  throw new UnexpectedAnswer(`Unexpected content type: ${answer.contentType || 'none'}`);
}

/** A whole response body as text; over MAX_BODY_BYTES, UnexpectedAnswer (and the response is dropped). */
export async function readBody(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      res.destroy();
      throw new UnexpectedAnswer(`The answer is larger than ${MAX_BODY_BYTES} bytes.`);
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
