// The transport between CalendarAgent's stateless /mcp endpoint and the one
// McpServer that answers every POST (mcp-http.ts), in place of a server and
// an SDK transport built for each request. It keeps what made those safe to
// share nothing: each POST's requests reach the server under ids of this
// transport's own (so two callers' requests with the same JSON-RPC id never
// meet in the server, whose handlers are keyed by id), their answers go back
// to that POST alone under the ids it sent, and a caller can cancel only
// requests of its own POST. What the SDK's StreamableHTTPServerTransport did
// in JSON-response mode stays: answers in the order of the requests, one
// object for one request and an array for a batch, none (202) for a POST of
// notifications and responses only, and anything else the server sends
// (notifications, which have no stream to go on) dropped. A server request
// to the client is refused: over stateless HTTP there is nowhere to send it.
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCErrorResponse, JSONRPCMessage, JSONRPCRequest, MessageExtraInfo, RequestId } from '@modelcontextprotocol/sdk/types.js';

/** One POST whose answers are being gathered. */
interface OpenPost {
  /** The answers to its requests, by position; filled as they come. */
  answers: Array<JSONRPCMessage | undefined>;
  /** How many are still missing. */
  waiting: number;
  done(answers: JSONRPCMessage[]): void;
}

/** A request handed to the server: whose it is, where its answer goes, and the id its caller gave it. */
interface Pending {
  post: OpenPost;
  index: number;
  id: RequestId;
}

/** One POST under way. */
export interface PostedMessages {
  /** The answers to its requests in their order; none when it held no request (answered 202). */
  answers: Promise<JSONRPCMessage[]>;
  /** Its caller went away unanswered: the requests still running are cancelled (their handlers' signal aborts). */
  cancel(): void;
}

export class McpPostTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  /** The last id given to a request; ids are numbers no caller's request is known under in the server. */
  private lastId = 0;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  async start(): Promise<void> {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pending.clear();
    this.onclose?.();
  }

  /**
   * Hands one POST's messages (JSON-RPC messages, checked) to the server with
   * `extra` (its caller's authInfo and requestInfo). A request for which
   * `refusal` gives an answer is answered with it and never reaches the server.
   */
  post(messages: readonly JSONRPCMessage[], extra: MessageExtraInfo, refusal: (request: JSONRPCRequest) => JSONRPCErrorResponse | undefined): PostedMessages {
    if (this.closed || !this.onmessage) throw new Error('The MCP server has closed.');
    let done!: (answers: JSONRPCMessage[]) => void;
    const answers = new Promise<JSONRPCMessage[]>((resolve) => (done = resolve));
    const post: OpenPost = { answers: [], waiting: 0, done };
    /** This POST's request ids (as JSON) and the ids the server knows them by. */
    const ours = new Map<string, number>();
    const delivered: JSONRPCMessage[] = [];
    for (const message of messages) {
      if ('method' in message && 'id' in message) {
        const index = post.answers.length;
        const refused = refusal(message);
        post.answers.push(refused);
        if (refused) continue;
        const id = ++this.lastId;
        this.pending.set(id, { post, index, id: message.id });
        ours.set(JSON.stringify(message.id), id);
        post.waiting++;
        delivered.push({ ...message, id });
      } else if ('method' in message) {
        const notice = this.notification(message, ours);
        if (notice) {
          delivered.push(notice);
          // A request of this POST cancelled by the POST itself gets no answer (the server sends none for it,
          // MCP cancellation): the POST stops waiting for it rather than hang (found in review, regress19d).
          const cancelled = message.method === 'notifications/cancelled' ? (notice as unknown as { params: { requestId: number } }).params.requestId : undefined;
          if (cancelled !== undefined && this.pending.delete(cancelled)) post.waiting--;
        }
      }
      // A response from the client answers nothing: the server sends it no requests.
    }
    for (const message of delivered) this.onmessage(message, extra);
    if (post.waiting === 0) done(answered(post));
    return {
      answers,
      cancel: () => {
        for (const [key, id] of ours) {
          if (!this.pending.delete(id)) continue;
          ours.delete(key);
          this.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: 'The client went away.' } }, extra);
        }
      },
    };
  }

  /** A notification as the server is to get it: a cancellation names the request by the server's id, and only a request of the same POST. */
  private notification(message: JSONRPCMessage & { method: string }, ours: ReadonlyMap<string, number>): JSONRPCMessage | undefined {
    if (message.method !== 'notifications/cancelled') return message;
    const params = (message as { params?: { requestId?: unknown } }).params;
    const id = params && 'requestId' in params ? ours.get(JSON.stringify(params.requestId)) : undefined;
    // Another POST's request (or none): each request stands alone, as with a server per request, where it was unknown.
    if (id === undefined) return undefined;
    return { ...message, params: { ...params, requestId: id } } as JSONRPCMessage;
  }

  async send(message: JSONRPCMessage, _options?: TransportSendOptions): Promise<void> {
    if ('result' in message || 'error' in message) {
      const pending = typeof message.id === 'number' ? this.pending.get(message.id) : undefined;
      // Its caller went away (cancelled) or the server closed.
      if (!pending) return;
      this.pending.delete(message.id as number);
      const { post, index } = pending;
      post.answers[index] = { ...message, id: pending.id } as JSONRPCMessage;
      if (--post.waiting === 0) post.done(answered(post));
      return;
    }
    if ('id' in message) throw new Error('CalendarAgent over stateless HTTP sends no requests to the client.');
    // A notification (progress, a log message): no stream to carry it, as with the SDK's transport in JSON mode.
  }
}

/** A POST's answers in the order of its requests, without those it cancelled itself (they have none). */
function answered(post: OpenPost): JSONRPCMessage[] {
  return post.answers.filter((answer): answer is JSONRPCMessage => answer !== undefined);
}
