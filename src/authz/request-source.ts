// Whose budget a request that adds a client counts against: open registration
// (register.ts) and the clients of metadata documents (client-documents.ts)
// share one rule, so that no source can spend another's.
import type { FastifyRequest } from 'fastify';
import { addressKey } from './login.js';

/**
 * The request's address (every loopback address is one source: a program could send from all of 127/8; an IPv6
 * address counts by its /64), and apart from that address's own, web pages'. A browser names the page that sent a
 * request in `Origin`, which the page cannot change, and native clients (the CLI, Claude Desktop, Claude Code) send
 * none. Found in review: a page left open in the owner's browser (CORS allows /register) used up loopback's daily
 * allowance in about ten minutes, and for a day no app on the machine could register, the CLI re-registering after
 * the sweep included. Pages now share one budget of their own per address, so they can use up only what pages get;
 * the database's growth stays bounded (two budgets per address, not one per origin).
 *
 * A GET sent by an `<img>` or a frame carries no `Origin`, but browsers name its sender in `Sec-Fetch-Site`: at
 * /authorize (a client_id there may be a metadata document's URL, a new client), anything but the person's own
 * visit (`none`) or this server's own page (`same-origin`) is a page's. `same-site` is one too: another port of
 * this host is the same site (consent.ts and device.ts read it the same way).
 */
export function requestSource(req: Pick<FastifyRequest, 'ip' | 'headers'>, issuer: string): string {
  const address = addressKey(req.ip);
  return sentByPage(req, issuer) ? `${address} pages` : address;
}

function sentByPage(req: Pick<FastifyRequest, 'headers'>, issuer: string): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== new URL(issuer).origin) return true;
  const site = req.headers['sec-fetch-site'];
  return site !== undefined && site !== 'none' && site !== 'same-origin';
}
