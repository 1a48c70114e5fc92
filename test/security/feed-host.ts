// Feeds on a loopback host for the attack suite: each served by name, added to
// the stack's owner as a `url` calendar of that name, with an agent's calendar
// token and a query for the week from an hour on, to read them at /freebusy.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import { exchangeAsAgent, userTokens, type Stack } from './stack.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface FeedHost {
  /** A calendar token, as the agent gets it by exchange. */
  token: string;
  /** `from=…&to=…`: the week from an hour on. */
  query: string;
  close(): Promise<void>;
}

export async function serveFeeds(stack: Stack, feeds: Readonly<Record<string, () => string>>): Promise<FeedHost> {
  const host = createServer((req, res) => {
    const feed = feeds[req.url!.slice(1).replace('.ics', '')];
    if (feed === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/calendar' }).end(feed());
  });
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(host.address() as AddressInfo).port}`;
  const owner = (await stack.store.ownerUser())!;
  for (const name of Object.keys(feeds)) {
    await stack.store.addCalendar({ id: `cal_${name}`, userId: owner.id, name, kind: 'url', source: `${base}/${name}.ics`, createdAt: Date.now() });
  }
  const exchanged = await exchangeAsAgent(stack, (await userTokens(stack)).accessToken);
  expect(exchanged.status, String(exchanged.body.error)).toBe(200);
  const from = Date.now() + HOUR;
  return {
    token: String(exchanged.body.access_token),
    query: `from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(from + 7 * DAY).toISOString())}`,
    close: () => new Promise<void>((resolve) => host.close(() => resolve())),
  };
}
