// The page shown to a browser with no session at the authorization server.
// The local owner signs in from the command line (a one-time link the CLI
// opens), so the page says how, and offers to come back here afterwards.
import type { FastifyReply } from 'fastify';
import type { AuthContext } from './context.js';
import { html, sendPage } from './pages.js';

export function renderSignIn(reply: FastifyReply, _ctx: AuthContext, _returnTo: string): FastifyReply {
  const body = html`<h1>Sign in to continue</h1>
<p>This server signs in its owner from the command line, on the computer it runs on.</p>
<p>Run <code>delegate login</code> there: it opens a one-time sign-in link in your browser.</p>
<p class="muted">The link works once and only for a few minutes, and only the account that owns delegate's data can create one.</p>`;
  return sendPage(reply, 401, 'Sign in to continue', body);
}
