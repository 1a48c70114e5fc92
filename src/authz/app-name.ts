// How the pages name an app (an OAuth client): by the name it registered,
// marked as its own unchecked claim unless this server knows who asked, and
// by a clear placeholder when that name is empty or shows nothing. One helper
// for the consent page, the device pages and /grants, so they say the same.
import type { ClientRecord } from '../store/index.js';
import { html, type Html } from './pages.js';
import { documentHost } from './policy/client-id-url.js';

/** What the pages say for an app whose registered name is missing or shows nothing. */
export const NAMELESS_APP = 'an app with no name';

/** Characters that show nothing on a page: spaces of every kind, controls, and format characters (zero-width, direction marks). */
const INVISIBLE = /[\s\p{Z}\p{Cc}\p{Cf}]/gu;

/**
 * The app's registered name, or undefined when it has none that a person would see. A `??` fallback let ""
 * through (found in review: /grants read "CalendarAgent through" and then nothing), so "", whitespace and
 * zero-width-only names count as absent here.
 */
export function registeredName(client: Pick<ClientRecord, 'clientName'> | undefined): string | undefined {
  const name = client?.clientName;
  return name && name.replace(INVISIBLE, '') !== '' ? name : undefined;
}

/**
 * The app's name as a page shows it: `<strong>name</strong>`, followed by "(name given by the app, not
 * checked)" unless `assured` (this server knows the owner's own CLI asked). A registered name proves nothing:
 * anyone can register any name, "delegate CLI" included (RFC 7591; RFC 6749 §10.2; RFC 8252 §8.6). With no
 * name, the placeholder, capitalised when it starts a sentence.
 *
 * A client named by its metadata document's URL (draft-ietf-oauth-client-id-metadata-document, OAuth Phishing
 * Attacks) is never assured, and is followed by the host that publishes the document, the one thing about it this
 * server checked.
 */
export function appName(client: (Pick<ClientRecord, 'clientName'> & Partial<Pick<ClientRecord, 'clientId' | 'metadata'>>) | undefined, opts: { assured: boolean; startsSentence?: boolean }): Html {
  const name = registeredName(client);
  const host = client ? documentHost(client) : undefined;
  const from = host === undefined ? '' : html` from <strong>${host}</strong>`;
  if (name === undefined) {
    return html`<strong>${opts.startsSentence ? NAMELESS_APP.charAt(0).toUpperCase() + NAMELESS_APP.slice(1) : NAMELESS_APP}</strong>${from}`;
  }
  const claimed =
    host !== undefined
      ? html` <span class="warn">(name given by its metadata document, not checked)</span>`
      : opts.assured
        ? ''
        : html` <span class="warn">(name given by the app, not checked)</span>`;
  return html`<strong>${name}</strong>${claimed}${from}`;
}
