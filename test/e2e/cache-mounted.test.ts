// tokens.json mounted in place, as a single file (Docker's `-v ./tokens.json:…`
// in CI; here `mount --bind`, which needs root, as CI runs these; elsewhere
// skipped). Found in review (s31fault): find-slot spent the refresh token,
// then could not rename the new cache over the mount point (EBUSY): the
// next commands replayed the spent token (refresh_replay, the family revoked)
// and said only "Cannot write the token cache". Now the refresh is refused
// before the refresh token is posted: one line, exit 1, nothing sent, the
// sign-in as it was; a sign-in stops before its link. The built CLI against
// `delegate serve`, on loopback.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { approveInBrowser, runCli, serveInNewHome, startCli, stopServeAndRemove, type Running } from './run.js';
import { expireCachedTokens, type CacheFile } from '../support/cached-tokens.js';

const asRoot = process.getuid?.() === 0;

let home: string;
let ports: string[];
let serve: Running;
let mounted: string | undefined;

beforeEach(async () => {
  if (!asRoot) return;
  ({ home, ports, serve } = await serveInNewHome('delegate-e2e-cache-mounted-'));
  const first = startCli(['find-slot', '--duration', '30m', '--json', '--no-browser', ...ports], home);
  await approveInBrowser(await first.loginUrl);
  expect((await first.done).code).toBe(0);
}, 60_000);

/** A bind mount of the data directory made by a case, unmounted first. */
let alias: string | undefined;

afterEach(async () => {
  if (!asRoot) return;
  if (alias !== undefined) execFileSync('umount', [alias]);
  alias = undefined;
  if (mounted !== undefined) execFileSync('umount', [mounted]);
  mounted = undefined;
  await stopServeAndRemove(serve, home);
});

/** tokens.json copied beside the data directory and that copy bind-mounted in its place, as Docker's `-v ./tokens.json:…` does. */
async function mountCacheInPlace(): Promise<{ tokenCache: string; source: string }> {
  const tokenCache = join(home, 'tokens.json');
  const source = join(dirname(home), 'mounted-tokens.json');
  await copyFile(tokenCache, source);
  execFileSync('mount', ['--bind', source, tokenCache]);
  mounted = tokenCache;
  return { tokenCache, source };
}

describe.skipIf(!asRoot)('tokens.json mounted in place (a single-file bind mount)', () => {
  it('a refresh is refused before the refresh token is sent: one line, exit 1, the way out; unmounted, the same sign-in goes on', { timeout: 60_000 }, async () => {
    const { tokenCache, source } = await mountCacheInPlace();
    const refreshToken = await expireCachedTokens(tokenCache);
    const before = await readFile(source, 'utf8');

    for (let run = 0; run < 2; run++) {
      const findSlot = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
      expect(findSlot.code, findSlot.stderr).toBe(1);
      expect(findSlot.stdout).toBe('');
      expect(findSlot.stderr).toBe(
        `delegate: The token cache ${tokenCache} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it. ` +
          'The access token was not refreshed (nothing was sent). Mount the directory that holds it instead, or point DELEGATE_HOME at a directory mounted whole.\n',
      );
    }
    // A sign-in stops before the browser is sent anywhere: its first write (the discovery it keeps) is refused the same way.
    const login = await runCli(['login', '--no-browser', ...ports], home);
    expect(login.code, login.stderr).toBe(1);
    expect(login.stdout).toBe('');
    expect(login.stderr).toBe(
      `delegate: The token cache ${tokenCache} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it. ` +
        'Mount the directory that holds it instead, or point DELEGATE_HOME at a directory mounted whole.\n',
    );
    expect(await readFile(source, 'utf8')).toBe(before);

    // Nothing reached the authorization server: no refresh, no replay.
    const audit = await runCli(['audit', '--json'], home);
    expect(audit.code, audit.stderr).toBe(0);
    expect(audit.stdout).not.toContain('token_refreshed');
    expect(audit.stdout).not.toContain('refresh_replay');

    // The way out taken (the file back in a directory of its own): the refresh token, never spent, renews the sign-in.
    execFileSync('umount', [tokenCache]);
    mounted = undefined;
    await copyFile(source, tokenCache);
    const after = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], home);
    expect(after.code, after.stderr).toBe(0);
    const saved = JSON.parse(await readFile(tokenCache, 'utf8')) as CacheFile;
    expect(Object.values(Object.values(saved.tokens)[0]!)[0]!.refresh_token).not.toBe(refreshToken);
    const audited = await runCli(['audit', '--json'], home);
    expect(audited.stdout).toContain('token_refreshed');
    expect(audited.stdout).not.toContain('refresh_replay');
  });

  // Found in review (s31fix, s31fix2): the delegation was revoked, then the unlink (or for --agent-url the write) failed
  // (EBUSY), and the command said only "Cannot delete …" or the mount-point line, the revocation unsaid; status then went
  // on showing the revoked sign-in as usable. Now logout is refused before anything is revoked, as a refresh is.
  it('logout, plain or --agent-url, is refused before anything is revoked: one line, exit 1; unmounted, it signs out', { timeout: 60_000 }, async () => {
    const { tokenCache } = await mountCacheInPlace();
    const agentUrl = `http://127.0.0.1:${ports[ports.indexOf('--agent-port') + 1]}/mcp`;
    for (const args of [['logout', ...ports], ['logout', '--agent-url', agentUrl]]) {
      const logout = await runCli(args, home);
      expect([logout.code, logout.stdout, logout.stderr], args.join(' ')).toEqual([
        1,
        '',
        `delegate: The token cache ${tokenCache} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it. ` +
          'Nothing was revoked. Unmount it and put the file back in its directory, then sign out again.\n',
      ]);
    }
    const grants = async () => (JSON.parse((await runCli(['grants', 'list', '--all', '--json'], home)).stdout) as Array<{ status: string }>).map((g) => g.status);
    expect(await grants()).toEqual(['active']);

    execFileSync('umount', [tokenCache]);
    mounted = undefined;
    const logout = await runCli(['logout', ...ports], home);
    expect(logout.code, logout.stderr).toBe(0);
    expect(await grants()).toEqual(['revoked']);
  });

  // Found in review (s31fix2): with the data directory bind-mounted elsewhere (`mount --bind H A`), the table lists the
  // file's mount only under H; a command with DELEGATE_HOME=A spent its refresh token, then could not save (EBUSY).
  it('reached through a bind mount of its directory, a refresh is refused all the same, nothing sent', { timeout: 60_000 }, async () => {
    await mountCacheInPlace();
    const other = join(dirname(home), 'alias');
    await mkdir(other);
    execFileSync('mount', ['--bind', home, other]);
    alias = other;
    await expireCachedTokens(join(other, 'tokens.json'));
    const findSlot = await runCli(['find-slot', '--duration', '30m', '--json', ...ports], other);
    expect([findSlot.code, findSlot.stdout], findSlot.stderr).toEqual([1, '']);
    expect(findSlot.stderr).toBe(
      `delegate: The token cache ${join(other, 'tokens.json')} is a mount point (a single file mounted there): it cannot be saved, since saving renames a new file over it. ` +
        'The access token was not refreshed (nothing was sent). Mount the directory that holds it instead, or point DELEGATE_HOME at a directory mounted whole.\n',
    );
    const audit = await runCli(['audit', '--json'], home);
    expect(audit.stdout).not.toContain('token_refreshed');
  });
});
