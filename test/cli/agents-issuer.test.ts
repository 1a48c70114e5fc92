// `agents register` and `agents show` with the servers on other ports than
// the default (review "readme", finding 8): with no --auth-port they sign for
// and check against the issuer this data directory's servers use, register
// says which issuer it signed for, and a statement signed for another issuer
// is reported as that mismatch, naming both, not as a statement that "does
// not verify" (which a forged one still is). Real servers (`delegate serve`,
// built) on spare loopback ports; the commands run in-process on their data
// directory.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolvePaths } from '../../src/config.js';
import { runCli } from '../../src/cli/program.js';
import { openStore } from '../../src/store/index.js';
import { startServers, type Servers } from '../interop/support.js';
import { fakeIo } from './fake-io.js';

let servers: Servers;
let keyFile: string;
/** An issuer no server of this directory has used: the default port when the test's servers are elsewhere. */
const OTHER = 'http://127.0.0.1:8410';

beforeAll(async () => {
  servers = await startServers();
  if (servers.issuer === OTHER) throw new Error('the test servers must not be on the default port');
  const { publicKey } = await generateKeyPair('ES256', { extractable: true });
  keyFile = join(servers.home, '..', 'helper.pub.json');
  await writeFile(keyFile, JSON.stringify(await exportJWK(publicKey)), { mode: 0o600 });
}, 60_000);

afterAll(async () => {
  await servers?.stop();
});

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const io = fakeIo({ DELEGATE_HOME: servers.home, NO_COLOR: '1' }, Date.now);
  const code = await runCli(args, io);
  return { code, out: io.out, err: io.err };
}

const register = (id: string, ...more: string[]) =>
  cli('agents', 'register', id, '--url', `http://127.0.0.1:8/${id}`, '--key', keyFile, '--name', 'Helper', '--operator', 'Ops', '--contact', 'ops@example.test', '--description', 'Drafts agendas', ...more);

describe('agents show, with no --auth-port, on a data directory served on other ports', () => {
  it('checks CalendarAgent against the issuer its servers use, and verifies it', async () => {
    const show = await cli('agents', 'show', 'calendar-agent');
    expect(show.err).toBe('');
    expect(show.code).toBe(0);
    expect(show.out).toContain(`✓ verified by ${servers.issuer}`);
  });

  it('with the wrong --auth-port: says the statement was signed for the other issuer, naming both', async () => {
    const show = await cli('agents', 'show', 'calendar-agent', '--auth-port', '8410');
    expect(show.code).toBe(1);
    expect(show.err).toContain(`signed for the authorization server at ${servers.issuer}`);
    expect(show.err).toContain(`against ${OTHER}`);
    expect(show.err).not.toContain('signature or claims');
    const json = await cli('agents', 'show', 'calendar-agent', '--auth-port', '8410', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ verified: false, issuer: OTHER, statement_issuer: servers.issuer });
  });
});

describe('agents register, with no --auth-port', () => {
  it('signs for the issuer the servers use, and says so', async () => {
    const reg = await register('helper');
    expect(reg.code, reg.err).toBe(0);
    expect(reg.out).toContain(`signed for the authorization server at ${servers.issuer}`);
    const show = await cli('agents', 'show', 'helper', '--json');
    expect(JSON.parse(show.out)).toMatchObject({ client_id: 'helper', verified: true, issuer: servers.issuer });
  });

  it('with --auth-port: signs for that one, says so, and show then names the mismatch', async () => {
    const reg = await register('helper-elsewhere', '--auth-port', '8410', '--json');
    expect(reg.code, reg.err).toBe(0);
    const registered = JSON.parse(reg.out) as { issuer: string; agent_statement: string };
    expect(registered.issuer).toBe(OTHER);
    expect(decodeJwt(registered.agent_statement).iss).toBe(OTHER);
    const show = await cli('agents', 'show', 'helper-elsewhere');
    expect(show.code).toBe(1);
    expect(show.err).toContain(`signed for the authorization server at ${OTHER}, and this checked it against ${servers.issuer}`);
    expect((await cli('agents', 'show', 'helper-elsewhere', '--auth-port', '8410')).code).toBe(0);
  });

  it('a statement whose issuer was rewritten (not signed for it) still does not verify, and is no mismatch', async () => {
    const forgedIssuer = 'http://127.0.0.1:8499';
    const store = openStore(resolvePaths({ DELEGATE_HOME: servers.home }).db);
    try {
      const client = (await store.clientById('helper'))!;
      const [header, payload, signature] = String(client.metadata.agent_statement).split('.');
      const claims = { ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), iss: forgedIssuer };
      const forged = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
      await store.updateClient({ ...client, metadata: { ...client.metadata, agent_statement: forged } });
    } finally {
      store.close();
    }
    // Checked against the servers' issuer (the statement names another) and against the one it names.
    for (const port of [[], ['--auth-port', '8499']]) {
      const show = await cli('agents', 'show', 'helper', ...port);
      expect(show.code).toBe(1);
      expect(show.err).toContain('The identity statement does not verify: the statement’s signature or claims do not verify.');
      expect(show.err).not.toContain('signed for');
    }
  });
});
