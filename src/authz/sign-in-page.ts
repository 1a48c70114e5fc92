// The page shown to a browser with no session at the authorization server:
// the password form when this server has named accounts, and always how the
// local owner signs in (from the command line, with a one-time link).
// It answers 403, not 401: RFC 9110 §15.5.2 requires a WWW-Authenticate
// challenge with every 401, and no HTTP authentication scheme describes a
// sign-in form. (A wrong password is 400, a refused one-time link 403.)
import type { FastifyReply } from 'fastify';
import type { AuthContext } from './context.js';
import { ownerSignsInByLink, safeNext, showLoginForm } from './login.js';
import { html, sendPage } from './pages.js';
import { approveCommand } from './approve-command.js';
import { withoutSignIn } from './bound-pages.js';

export async function renderSignIn(reply: FastifyReply, ctx: AuthContext, page: string): Promise<FastifyReply> {
  // The page as anyone may be told it: a sign-in value it came with is the browser's alone (bound-pages.ts).
  const returnTo = withoutSignIn(page);
  const accounts = (await ctx.store.listUsers()).some((u) => u.passwordHash !== null);
  if (accounts) return showLoginForm(reply, ctx, safeNext(returnTo), 403);
  // Published at an https URL, the owner's one-time link is not how anyone signs in here (`delegate login` by ports
  // stops there, naming --agent-url): only a named account can, and there is none yet (noticed with review regress20g).
  if (!ownerSignsInByLink(ctx.issuer)) {
    const none = html`<h1>Sign in to continue</h1>
<p>This server has no accounts that sign in with a password yet, so nobody can sign in here.</p>
<p>Its operator adds one on the computer it runs on, with <code>${ctx.delegateCommand()} users add &lt;name&gt;</code>.</p>`;
    return sendPage(reply, 403, 'Sign in to continue', none);
  }
  // Another app's request (an MCP client's authorization URL, a device's code page): `delegate login` signs in only the
  // CLI's own request, so the page names the command that signs the owner in for this one (found in review, s22mcp).
  const approve = approveCommand(ctx.issuer, returnTo, ctx.delegateCommand());
  const how = approve
    ? html`<p>To approve or deny this request, run this there; it opens a one-time sign-in link for this very request in your browser, and this server then shows you what the app asks for:</p>
<pre><code>${approve}</code></pre>`
    : html`<p>Run <code>${ctx.delegateCommand()} login</code> there: it opens a one-time sign-in link in your browser, for the request it makes.</p>`;
  const body = html`<h1>Sign in to continue</h1>
<p>This server signs in its owner from the command line, on the computer it runs on.</p>
${how}
<p>To see or revoke the delegations you have given, run <code>${ctx.delegateCommand()} grants list</code> there.</p>
<p class="muted">The link works once, only for a few minutes and only for that request, and only the account that owns delegate's data can create one.</p>`;
  return sendPage(reply, 403, 'Sign in to continue', body);
}
