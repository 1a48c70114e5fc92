// DNS rebinding against a feed's fetch (found in review, s24feeds): each
// address was checked by resolving its name, and the fetch resolved it again to
// connect, so a name that answered a public address to the check and 127.0.0.1
// to the connect took a feed on a public address into this machine. Now a name
// is resolved once and the connection made to the address checked. Run in a
// network namespace with only loopback (test/support/netns.ts), against the
// system's resolver and a name server there that answers differently on each
// query (fixtures/feed-rebind-netns.ts).
import { describe, expect, it } from 'vitest';
import { netnsUnavailable, runInNetns } from '../support/netns.js';

const unavailable = netnsUnavailable();
const INWARD = 'The feed redirected to a loopback, private or other special-use address (RFC 6890), where a feed on a public address may not send delegate; the redirect was not followed.';

describe.skipIf(unavailable !== undefined)(`a feed's fetch where names rebind${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  it('connects to the address it checked: a rebinding redirect reaches the public host, a rebinding feed cannot redirect inward; https keeps the name', async () => {
    const child = await runInNetns('test/calendar/fixtures/feed-rebind-netns.ts', [], { timeoutMs: 60_000 });
    expect(child.status, child.stderr).toBe(0);
    const result = JSON.parse(child.stdout.trim().split('\n').pop()!) as Record<string, unknown> & { seen: Record<string, string[]>; asked: Record<string, number> };
    // Nothing reached the service on this machine.
    expect(result.seen.inside).toEqual([]);
    // The redirect's name, resolved once, to the public address it had at the check; asked for by its name.
    expect(result.redirectRebinds).toBe(1);
    expect(result.seen.publicTwin).toEqual([expect.stringMatching(/^rebind\.example:\d+$/)]);
    // The feed's own name, resolved once: public, so its redirect into loopback is refused.
    expect(result.feedRebinds).toBe(INWARD);
    expect(result.asked).toMatchObject({ 'rebind.example': 1, 'flip.example': 1 });
    // TLS to the pinned address still names the host: SNI and the certificate's name.
    expect(result.secure).toBe(1);
    expect(result.seen.secure).toEqual([expect.stringMatching(/^secure\.example:\d+ sni=secure\.example$/)]);
  }, 90_000);
});
