// MCP's stdio transport for CalendarAgent (MCP transports spec, "stdio"): one
// JSON-RPC message per line on stdin and stdout. The SDK's
// StdioServerTransport drops in silence every line it cannot take (not JSON, no
// JSON-RPC message, a batch), so a client that sent a request in one waits for
// an answer that never comes; and it ends the whole session on a line over
// its size limit. Here each such line gets the JSON-RPC 2.0 error it calls for
// (-32700, -32600), naming the request's id whenever one can be read, and the
// session goes on. Batches are taken as the negotiated protocol version says:
// answered together, as one array, up to 2025-03-26 (whose base protocol says
// an implementation MUST support receiving them); refused request by request
// from 2025-06-18, which has none. An error for a line whose id cannot be read
// carries no id: MCP's schema (2025-11-25) makes an error's id optional and has
// no null id, and the SDK's client takes such an error but refuses one with
// `id: null` (JSON-RPC 2.0's form, which /mcp keeps, as the SDK's HTTP
// transport writes it). Each message is screened as on /mcp before the
// server sees it (mcp-requests.ts: malformed params, unknown tools, cursors,
// task metadata); a refusal is answered like any other, inside its batch.
import type { Readable, Writable } from 'node:stream';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { JSONRPCMessageSchema, LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { batchProblem } from './json-rpc-batch.js';
import { screenMessage } from './mcp-requests.js';
import { AGENT_SCOPE_POLICY } from './tool-scopes.js';

/** The longest line taken, as the SDK's own transport (10 MiB); a longer one is read past and refused. */
const MAX_LINE_BYTES = 10 * 1024 * 1024;

const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;

type Id = string | number;

/** A batch whose answers are being gathered, to be written as one array (JSON-RPC 2.0 §6). */
interface OpenBatch {
  /** The ids (as JSON) of its requests not answered yet. */
  waiting: Set<string>;
  answers: JSONRPCMessage[];
  /** Written (or found to need no answer). */
  done: boolean;
}

export class StdioLineTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Reading past the rest of a line that was too long. */
  private skipping = false;
  /**
   * The protocol version of the session, taken from the initialize request as
   * it is handed to the server: what the SDK's server answers (the version
   * asked for if it knows it, else its latest), known before the answer is
   * written, so that a line read in between is judged by it too.
   */
  private version: string | undefined;
  private batches: OpenBatch[] = [];
  private started = false;
  private closed = false;

  constructor(
    private readonly input: Readable = process.stdin,
    private readonly output: Writable = process.stdout,
    private readonly maxLineBytes = MAX_LINE_BYTES,
    /** The tool table a tools/call must name an own key of (the agent's). */
    private readonly tools: Readonly<Record<string, unknown>> = AGENT_SCOPE_POLICY.tools,
  ) {}

  async start(): Promise<void> {
    if (this.started) throw new Error('The stdio transport is started already.');
    this.started = true;
    this.input.on('data', this.onData);
    this.input.on('error', this.onInputError);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.onData);
    this.input.off('error', this.onInputError);
    if (this.input.listenerCount('data') === 0) this.input.pause();
    this.pending = [];
    // Nothing more is written: a batch still waiting for answers is let go.
    this.batches = [];
    this.onclose?.();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const m = message as Record<string, unknown>;
    if ('id' in m && ('result' in m || 'error' in m)) {
      const key = JSON.stringify(m.id);
      const batch = this.batches.find((b) => b.waiting.has(key));
      if (batch) {
        batch.waiting.delete(key);
        batch.answers.push(message);
        return this.flushBatch(batch);
      }
    }
    return this.write(message);
  }

  private readonly onInputError = (error: Error): void => {
    this.onerror?.(error);
  };

  private readonly onData = (chunk: Buffer | string): void => {
    let rest = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    for (let end = rest.indexOf(0x0a); end !== -1; end = rest.indexOf(0x0a)) {
      const head = rest.subarray(0, end);
      rest = rest.subarray(end + 1);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      // The limit is on the message: a CR before the LF is not counted.
      const crlf = head.length > 0 ? head[head.length - 1] === 0x0d : this.pending.at(-1)?.at(-1) === 0x0d;
      if (this.pendingBytes + head.length - (crlf ? 1 : 0) > this.maxLineBytes) {
        this.pending = [];
        this.pendingBytes = 0;
        this.refuseLongLine();
        continue;
      }
      const line = Buffer.concat([...this.pending, head]).toString('utf8');
      this.pending = [];
      this.pendingBytes = 0;
      this.takeLine(line);
      if (this.closed) return;
    }
    if (rest.length === 0 || this.skipping) return;
    // One byte over may be the CR of a CRLF still to come; the LF settles it.
    if (this.pendingBytes + rest.length > this.maxLineBytes + 1) {
      // Refused now, not at its end: the client learns at once, and nothing more of it is kept.
      this.pending = [];
      this.pendingBytes = 0;
      this.skipping = true;
      this.refuseLongLine();
      return;
    }
    this.pending.push(rest);
    this.pendingBytes += rest.length;
  };

  private refuseLongLine(): void {
    void this.write(errorAnswer(undefined, INVALID_REQUEST, `Invalid Request: a message longer than ${this.maxLineBytes} bytes was read past.`));
  }

  private takeLine(line: string): void {
    // A CRLF's CR is JSON whitespace, like the blanks of an empty line.
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      void this.write(errorAnswer(undefined, PARSE_ERROR, 'Parse error: the line is not JSON.'));
      return;
    }
    if (Array.isArray(value)) return this.takeBatch(value);
    const refusal = refusalOf(value);
    if (refusal === 'deliver') {
      const inUse = this.requestIdInUse(value);
      return inUse ? void this.write(inUse) : this.deliver(value as JSONRPCMessage);
    }
    if (refusal) void this.write(refusal);
    else this.droppedResponse();
  }

  private droppedResponse(): void {
    this.onerror?.(new Error('A malformed JSON-RPC response was dropped (responses are never answered).'));
  }

  private takeBatch(batch: unknown[]): void {
    // JSON-RPC 2.0 §6: an empty array is one Invalid Request, with no id.
    if (batch.length === 0) return void this.write(errorAnswer(undefined, INVALID_REQUEST, 'Invalid Request: an empty batch.'));
    const valid = batch.filter((m) => JSONRPCMessageSchema.safeParse(m).success);
    const problem = batchProblem(valid, this.version);
    if (problem) {
      // Each request the batch carried is answered by its id, one line each (valid in every version), so none waits.
      // Members that are responses (to the server's own requests) are never answered (JSON-RPC 2.0 §5).
      const ids = batch.filter((m) => !isResponseLike(m)).map(requestIdOf).filter((id): id is Id => id !== undefined);
      const answers = ids.length > 0 ? ids.map((id) => errorAnswer(id, INVALID_REQUEST, `Invalid Request: ${problem}`)) : [errorAnswer(undefined, INVALID_REQUEST, `Invalid Request: ${problem}`)];
      for (const answer of answers) void this.write(answer);
      return;
    }
    const open: OpenBatch = { waiting: new Set(), answers: [], done: false };
    const deliveries: JSONRPCMessage[] = [];
    for (const member of batch) {
      const refusal = refusalOf(member);
      const inUse = refusal === 'deliver' ? this.requestIdInUse(member) : undefined;
      if (inUse) {
        open.answers.push(inUse);
      } else if (refusal === 'deliver') {
        const m = member as Record<string, unknown>;
        if (typeof m.method === 'string' && 'id' in m) open.waiting.add(JSON.stringify(m.id));
        deliveries.push(member as JSONRPCMessage);
      } else if (refusal) {
        open.answers.push(refusal);
      } else {
        this.droppedResponse();
      }
    }
    if (open.waiting.size > 0) this.batches.push(open);
    for (const message of deliveries) this.deliver(message);
    void this.flushBatch(open);
  }

  private deliver(received: JSONRPCMessage): void {
    const screened = screenMessage(received, this.tools);
    // Answered here, through send(), so that a refused request of a batch is answered inside it.
    if ('refuse' in screened) return void this.send(screened.refuse);
    const message = screened.deliver;
    const m = message as Record<string, unknown>;
    // A refused initialize (malformed) never reaches this point, so it sets no version.
    if (m.method === 'initialize' && 'id' in m) {
      // The first one sets the session's version; another later is the client's mistake, and changes nothing here.
      const asked = (m.params as { protocolVersion?: unknown } | undefined)?.protocolVersion;
      this.version ??= typeof asked === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION;
    }
    if (m.method === 'notifications/cancelled') {
      // The SDK sends no answer to a cancelled request (MCP: the receiver SHOULD NOT): a batch holding it must not wait for one.
      const id = (m.params as { requestId?: unknown } | undefined)?.requestId;
      if (id !== undefined) this.noLongerWaiting(JSON.stringify(id));
    }
    this.onmessage?.(message);
  }

  /** A batch whose request will get no answer: written with the answers it has once the others are in. */
  private noLongerWaiting(key: string): void {
    for (const batch of [...this.batches]) {
      if (batch.waiting.delete(key)) void this.flushBatch(batch);
    }
  }

  /** The refusal of a request whose id a batch's request not answered yet holds (JSON-RPC: an id in use MUST NOT be sent again), or undefined. */
  private requestIdInUse(value: unknown): JSONRPCMessage | undefined {
    const id = isResponseLike(value) ? undefined : requestIdOf(value);
    if (id === undefined || !this.batches.some((b) => b.waiting.has(JSON.stringify(id)))) return undefined;
    return errorAnswer(id, INVALID_REQUEST, `Invalid Request: the id ${JSON.stringify(id).slice(0, 40)} belongs to a request not answered yet.`);
  }

  private async flushBatch(batch: OpenBatch): Promise<void> {
    if (batch.waiting.size > 0 || batch.done) return;
    batch.done = true;
    const at = this.batches.indexOf(batch);
    if (at !== -1) this.batches.splice(at, 1);
    // §6: a batch of notifications only is answered with nothing, never an empty array.
    if (batch.answers.length > 0) await this.writeLine(JSON.stringify(batch.answers));
  }

  private write(message: JSONRPCMessage): Promise<void> {
    return this.writeLine(JSON.stringify(message));
  }

  private writeLine(json: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      if (this.output.write(`${json}\n`)) resolve();
      else this.output.once('drain', resolve);
    });
  }
}

/**
 * What to do with one parsed message: hand it to the server ('deliver'), answer it
 * with an error (the answer), or nothing (undefined: a malformed response, which
 * JSON-RPC 2.0 never answers; it goes to nobody).
 */
function refusalOf(value: unknown): JSONRPCMessage | 'deliver' | undefined {
  if (JSONRPCMessageSchema.safeParse(value).success) return 'deliver';
  if (isResponseLike(value)) return undefined;
  return errorAnswer(requestIdOf(value), INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 request or notification.');
}

/** A response (to one of the server's own requests), well formed or not: a result or an error, and no method. */
function isResponseLike(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !('method' in value) && ('result' in value || 'error' in value);
}

/** The id of something that looks like a request, when it is one an answer may carry (a string or an integer, as the SDK's schema has it). */
function requestIdOf(value: unknown): Id | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { id } = value as { id?: unknown };
  return typeof id === 'string' || Number.isInteger(id) ? (id as Id) : undefined;
}

/** A JSON-RPC error answer; without an id when none could be read (MCP's schema makes it optional for errors). */
function errorAnswer(id: Id | undefined, code: number, message: string): JSONRPCMessage {
  return { jsonrpc: '2.0', ...(id === undefined ? {} : { id }), error: { code, message } } as JSONRPCMessage;
}
