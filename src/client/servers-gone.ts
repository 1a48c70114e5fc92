// When the servers the CLI talks to stop answering mid-command: the servers
// another delegate command started in its own process (the embedded stack)
// have gone with it, or never ran. The caller (the CLI) is told, brings the
// servers back on the same ports (starting them itself, or finding those
// another command started meanwhile), and the request is sent again.
//
// Only a request that got no answer because its connection was refused or
// dropped is sent again. Refused: nothing of it left this process. Dropped
// before any answer (reset, closed): a closing server cuts only connections on
// which it is answering nothing (src/http/app.ts), and one that was killed
// mid-request leaves nothing that a second send makes worse here: find_slot
// and list_busy only read, a refresh token spent moments ago is honoured
// again within the authorization server's grace window, and an authorization
// or device code spent already is refused (its first answer was lost
// anyway). A request that timed out is never sent again: the server may still
// be working on it.
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { authorizationServerMetadataUrl } from '../delegation/resource.js';
import { DATA_DIRECTORY_HEADER } from '../data-directory-id.js';
import { causeAmong, ClientError, codeAmong } from './errors.js';

/**
 * Makes the servers answer again after a request got no answer, or fails with
 * what stands in the way (another program on a port, only some of the
 * servers).
 */
export type ServersGone = () => Promise<void>;

/** How many times one request is sent again: commands that started servers may come and go while it waits. */
const MAX_RESENDS = 3;

/** Error codes of a connection refused, or dropped before any answer came back (node:http's and undici's). */
const UNANSWERED_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** Whether the request failed because the server refused or dropped the connection before answering (anywhere in its causes). */
export function wasUnanswered(error: unknown): boolean {
  return codeAmong(error, UNANSWERED_CODES) !== undefined;
}

/** `send()`; when it gets no answer and there is someone to tell, the servers brought back and `send()` again, a few times at most. */
export async function resendIfUnanswered<T>(send: () => Promise<T>, serversGone: ServersGone | undefined): Promise<T> {
  for (let resends = 0; ; resends++) {
    try {
      return await send();
    } catch (error) {
      if (serversGone === undefined || resends >= MAX_RESENDS || !wasUnanswered(error)) throw error;
      await serversGone();
    }
  }
}

/** A fetch whose unanswered requests are sent again once the servers are back (see resendIfUnanswered). */
export function resendingFetch(fetchFn: FetchLike, serversGone: ServersGone | undefined): FetchLike {
  if (serversGone === undefined) return fetchFn;
  return (url, init) => resendIfUnanswered(() => fetchFn(url, init), serversGone);
}

/** How long /start waits for the authorization server's metadata before it sends the browser on anyway: enough to tell refused from answered. */
export const START_CHECK_TIMEOUT_MS = 1500;

/**
 * Before a browser is sent to the authorization server at `issuer` (the owner's link behind the CLI's /start,
 * sign-in.ts): one request for its metadata (RFC 8414), bounded by the caller's `fetchFn` (START_CHECK_TIMEOUT_MS).
 * - Its own metadata (200, `issuer` as given, and this data directory's identity, `dataDirectory`, where the server
 *   sends one): the browser goes on.
 * - No answer (refused, dropped): the servers are brought back (serversGone) and it asks again, as any request of the
 *   session does; what stands in the way of bringing them back is thrown.
 * - A program of another user on the port (the CLI's guard refuses to send to it, FOREIGN_LISTENER): thrown, and the
 *   owner's link never goes there (found in review, s28new: the guard's error was taken for "no answer in time").
 * - Any other answer (another program of this user, another data directory's server): serversGone's look at the ports
 *   (ensureStack) says what stands there; servers it takes for this directory's must then answer as the one this
 *   sign-in began with, or the link, made for that issuer, could only be refused (s28new, s28new2).
 * - No answer in time (a stopped server): left for the browser to meet.
 */
export async function bringBackIfGone(issuer: string, fetchFn: FetchLike, serversGone: ServersGone, dataDirectory?: () => Promise<string | undefined>): Promise<void> {
  const url = authorizationServerMetadataUrl(issuer);
  const ask = () => fetchFn(url, { headers: { accept: 'application/json' } });
  let cannot: { error: unknown } | undefined;
  const gone: ServersGone = () =>
    serversGone().catch((error: unknown) => {
      cannot = { error };
      throw error;
    });
  // One look: the answer, or undefined when none came in time (left for the browser to meet); what stands in the way
  // is thrown. The look after serversGone is the same look (found in review, s28new3: it was a bare request, whose
  // refusal or slowness ended the sign-in with a bare "fetch failed").
  const look = async (): Promise<Response | undefined> => {
    try {
      return await resendIfUnanswered(ask, gone);
    } catch (error) {
      if (cannot !== undefined) throw cannot.error;
      const foreign = foreignListener(error);
      if (foreign !== undefined) throw foreign;
      return undefined;
    }
  };
  const answer = await look();
  if (answer === undefined) return;
  const ours = await dataDirectory?.();
  if (await answersAs(answer, issuer, ours)) return;
  await serversGone();
  const again = await look();
  if (again !== undefined && !(await answersAs(again, issuer, ours))) {
    throw new ClientError('ISSUER_MISMATCH', `The authorization server on the port of ${issuer} no longer answers as ${issuer}, the one this sign-in began with: nothing was sent to it. Run the command again.`);
  }
}

/** Whether `answer` is the metadata of the authorization server `issuer`, of the data directory `ours` where it says which. */
async function answersAs(answer: Response, issuer: string, ours: string | undefined): Promise<boolean> {
  const body = (await answer.json().catch(() => undefined)) as { issuer?: unknown } | undefined;
  const said = answer.headers.get(DATA_DIRECTORY_HEADER);
  return answer.status === 200 && body?.issuer === issuer && (ours === undefined || said === null || said === ours);
}

/** The error of the CLI's guard against a listener of another user (src/http/listener-owner.ts) among an error's causes, if any. */
function foreignListener(error: unknown): Error | undefined {
  return causeAmong(error, (e) => e instanceof Error && (e as { code?: unknown }).code === 'FOREIGN_LISTENER') as Error | undefined;
}
