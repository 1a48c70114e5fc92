// The pages of the device authorization grant (RFC 8628 §3.3): type the code
// your device shows, check that the code here is the one on your device
// before going on (§5.4), and the end ("return to your device").
import type { FastifyReply } from 'fastify';
import type { ClientRecord } from '../store/index.js';
import { appName } from './app-name.js';
import { html, sendPage } from './pages.js';

/**
 * The code form. `filledIn` is a code a link carried that was not looked up (the link came from another page):
 * the person checks it against their device and sends it themselves.
 */
export function renderDeviceEntry(reply: FastifyReply, problem: string | undefined, status = problem ? 400 : 200, filledIn?: string): FastifyReply {
  const body = html`<h1>Connect a device</h1>
<p>Type the code your device shows, for example in the terminal where you ran <code>delegate login --device</code>.</p>
${problem ? html`<p class="warn">${problem}</p>` : ''}
${filledIn ? html`<p class="warn">The link you followed filled in a code. Continue only if it is exactly the code your device shows.</p>` : ''}
<form method="get" action="/device">
<label for="user_code">Code</label>
<input type="text" id="user_code" name="user_code" autocomplete="off" autocapitalize="characters" spellcheck="false" placeholder="BCDF-GHJK"${filledIn ? html` value="${filledIn}"` : ''}>
<div class="actions"><button class="primary" type="submit">Continue</button></div>
</form>`;
  return sendPage(reply, status, 'Connect a device', body);
}

export function renderDeviceConfirm(reply: FastifyReply, view: { userCode: string; client: ClientRecord; clientAssured: boolean; agentName: string; csrf: string; signIn?: string }): FastifyReply {
  const body = html`<h1>Is this the code on your device?</h1>
<p class="code"><strong>${view.userCode}</strong></p>
<p>${appName(view.client, { assured: view.clientAssured, startsSentence: true })} wants you to let <strong>${view.agentName}</strong> act for you from that device.</p>
<p class="warn">Continue only if you started this yourself and your device shows exactly this code. If someone sent you this link, choose Cancel.</p>
<form method="post" action="/device">
<input type="hidden" name="user_code" value="${view.userCode}">
<input type="hidden" name="csrf" value="${view.csrf}">
${view.signIn ? html`<input type="hidden" name="signin" value="${view.signIn}">` : ''}
<div class="actions">
<button class="primary" type="submit" name="decision" value="continue">Continue</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</div>
</form>`;
  return sendPage(reply, 200, 'Is this the code on your device?', body);
}

export function renderDeviceDone(reply: FastifyReply, approved: boolean): FastifyReply {
  const body = approved
    ? html`<h1>Done</h1><p>Your device is connected. You can close this window and return to it.</p>`
    : html`<h1>Nothing was shared</h1><p>The request was refused. You can close this window.</p>`;
  return sendPage(reply, 200, approved ? 'Done' : 'Nothing was shared', body);
}
