// A stand-in for the authorization server's revocation list endpoint, speaking
// the protocol of docs/internals.md ("Revocation list for resource servers"):
// `GET /revocations?since=&wait=` answers at once when something newer than
// `since` is listed, otherwise holds the request up to `wait` seconds. Tests
// of the client use it to control what the server says, and when; the
// end-to-end tests use the real authorization server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface Listed {
  seq: number;
  kind: 'grant' | 'token';
  id: string;
  /** NumericDate after which it affects no token; omitted from answers unless `withExpiry`. */
  exp: number;
}

export interface FakeRevocationEndpoint {
  issuer: string;
  /** Every request, as "GET /path?query". */
  requests: string[];
  revoke(kind: 'grant' | 'token', id: string, exp?: number): void;
  /** Drops entries from what the server lists (as the AS does once their tokens have expired). */
  forget(id: string): void;
  /** Starts the list over with a new cursor sequence (a new database). */
  reset(): void;
  /** Makes the next answers fail with this status (0: answer normally). */
  failWith(status: number): void;
  close(): Promise<void>;
}

export interface FakeEndpointOptions {
  /** Where the metadata says the endpoint is; undefined leaves the field out (clients fall back to /revocations). */
  metadataPath?: string | undefined;
  staleAfter?: number;
  /** Whether answers carry the `expires_at` extension. */
  withExpiry?: boolean;
  /** What /.well-known/oauth-authorization-server names as issuer (default: the real one). */
  claimedIssuer?: string;
}

export async function startFakeRevocationEndpoint(options: FakeEndpointOptions = {}): Promise<FakeRevocationEndpoint> {
  const listed: Listed[] = [];
  let seq = 0;
  let failing = 0;
  const requests: string[] = [];
  const holding = new Set<() => void>();
  const path = options.metadataPath ?? '/revocations';
  let issuer = '';

  const answer = (res: ServerResponse, since: number) => {
    const items = listed.filter((e) => e.seq > since);
    const body: Record<string, unknown> = {
      cursor: seq,
      grants: items.filter((e) => e.kind === 'grant').map((e) => e.id),
      tokens: items.filter((e) => e.kind === 'token').map((e) => e.id),
      stale_after: options.staleAfter ?? 30,
    };
    if (options.withExpiry) body.expires_at = Object.fromEntries(items.map((e) => [e.id, e.exp]));
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    requests.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: options.claimedIssuer ?? issuer, ...(options.metadataPath ? { revocation_list_endpoint: `${issuer}${path}` } : {}) }));
      return;
    }
    if (url.pathname !== path || req.method !== 'GET') {
      res.writeHead(404).end();
      return;
    }
    if (failing) {
      res.writeHead(failing, { 'content-type': 'application/json' }).end('{"error":"server_error"}');
      return;
    }
    const since = Number(url.searchParams.get('since') ?? 0);
    const wait = Math.min(25, Number(url.searchParams.get('wait') ?? 0));
    // A client ahead of the list (it started over) is told at once, so it can fetch it whole.
    if (seq !== since || wait <= 0) return answer(res, since);
    // Long poll: answer when something is revoked, or when the wait is over.
    const wake = () => {
      clearTimeout(timer);
      holding.delete(wake);
      if (!res.writableEnded) answer(res, since);
    };
    const timer = setTimeout(wake, wait * 1000);
    holding.add(wake);
    req.on('close', () => {
      clearTimeout(timer);
      holding.delete(wake);
    });
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const wakeAll = () => {
    for (const wake of [...holding]) wake();
  };

  return {
    issuer,
    requests,
    revoke(kind, id, exp = Math.floor(Date.now() / 1000) + 600) {
      listed.push({ seq: ++seq, kind, id, exp });
      wakeAll();
    },
    forget(id) {
      const i = listed.findIndex((e) => e.id === id);
      if (i >= 0) listed.splice(i, 1);
    },
    reset() {
      listed.length = 0;
      seq = 0;
    },
    failWith(status) {
      failing = status;
    },
    close: () =>
      new Promise<void>((resolve) => {
        wakeAll();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
