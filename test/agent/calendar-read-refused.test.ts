// readBusyTime when the calendar backend refuses the exchanged token (review s27mcp, finding 3): the cached calendar
// token is forgotten and the exchange made once more, so a revoked delegation is told by the authorization server's
// refusal (with the advice to sign in again), not the calendar's; a backend that refuses every token is asked twice,
// no more, and only when the token refused came from the cache and was refused as invalid (401). A real HTTP server stands for the backend; the exchanger is the agent's interface, counted.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readBusyTime } from '../../src/agent/calendar-read.js';
import { TokenExchangeError, type TokenExchanger } from '../../src/agent/exchange.js';

let server: Server;
let calendarUrl: string;
let calendarRequests: number;
let exchanges: number;
let forgotten: number;
let refuseExchangeAfter: number;
/** Whether the exchanger hands out its first token from its cache (exchanged for an earlier call). */
let firstCached: boolean;
/** What the backend answers every request with. */
let refusal: { status: number; error: string };

beforeAll(async () => {
  server = createServer((req, res) => {
    calendarRequests++;
    res.writeHead(refusal.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: refusal.error, error_description: 'The delegation behind this token has been revoked.' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  calendarUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  calendarRequests = 0;
  exchanges = 0;
  forgotten = 0;
  refuseExchangeAfter = Infinity;
  firstCached = true;
  refusal = { status: 401, error: 'invalid_token' };
});

const exchanger: TokenExchanger = {
  async exchange() {
    exchanges++;
    if (exchanges > refuseExchangeAfter) throw new TokenExchangeError('invalid_request', 'refused', 'The delegation behind the subject token has been revoked.');
    return { accessToken: `calendar-token-${exchanges}`, expiresAt: Date.now() + 300_000, scope: 'freebusy:read', cached: firstCached && exchanges === 1 };
  },
  forget() {
    forgotten++;
  },
  cacheSize: 0,
};

const read = () =>
  readBusyTime(
    { calendarUrl, exchanger, calendarTimeoutMs: 10_000, reauthorize: () => 'Run `delegate login` in a terminal, then ask again.' },
    'subject-token',
    { start: Date.now(), end: Date.now() + 3_600_000 },
    {},
  );

describe('readBusyTime, the calendar refusing the exchanged token', () => {
  it('exchanges once more, and a refused exchange gives the advice to sign in again', async () => {
    refuseExchangeAfter = 1;
    const result = await read();
    expect(result).toEqual({
      ok: false,
      message:
        'The authorization server would not let CalendarAgent act on this delegation: The delegation behind the subject token has been revoked. Run `delegate login` in a terminal, then ask again.',
    });
    expect({ exchanges, forgotten, calendarRequests }).toEqual({ exchanges: 2, forgotten: 1, calendarRequests: 1 });
  });

  // Found in review (s27rev4): every refusal was exchanged again, so a backend that refuses every token (one trusting
  // another authorization server) got two requests, and the AS two exchanges, on every call.
  it('does not exchange again for a token just exchanged: the backend is asked once, and its refusal passed on', async () => {
    firstCached = false;
    const result = await read();
    expect(result).toEqual({ ok: false, message: 'The calendar refused access: The delegation behind this token has been revoked.' });
    expect({ exchanges, forgotten, calendarRequests }).toEqual({ exchanges: 1, forgotten: 1, calendarRequests: 1 });
  });

  it('does not exchange again for a 403 (insufficient_scope: a token of the same scope cannot mend it)', async () => {
    refusal = { status: 403, error: 'insufficient_scope' };
    const result = await read();
    expect(result.ok).toBe(false);
    expect({ exchanges, forgotten, calendarRequests }).toEqual({ exchanges: 1, forgotten: 1, calendarRequests: 1 });
  });

  it('asks a backend that refuses every token twice, forgetting each token, and passes its refusal on', async () => {
    const result = await read();
    expect(result).toEqual({ ok: false, message: 'The calendar refused access: The delegation behind this token has been revoked.' });
    expect({ exchanges, forgotten, calendarRequests }).toEqual({ exchanges: 2, forgotten: 2, calendarRequests: 2 });
  });
});
