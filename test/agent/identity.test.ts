// The agent's key file: created once with private permissions, shared by
// racing processes, and never overwritten when it is damaged.
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, importJWK, SignJWT, jwtVerify } from 'jose';
import { AgentKeyError, loadOrCreateAgentKey } from '../../src/agent/identity.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'delegate-agent-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadOrCreateAgentKey', () => {
  it('creates an ES256 key, 0600 in a 0700 directory, with an RFC 7638 kid', async () => {
    const path = join(dir, 'home', 'agent-key.json');
    const identity = await loadOrCreateAgentKey(path);
    expect(identity.clientId).toBe('calendar-agent');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'home'))).mode & 0o777).toBe(0o700);
    expect(identity.privateJwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
    expect(identity.publicJwk.d).toBeUndefined();
    expect(identity.publicJwk.kid).toBe(await calculateJwkThumbprint(identity.publicJwk, 'sha256'));
    expect(identity.privateJwk.kid).toBe(identity.publicJwk.kid);

    // The two halves belong together.
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(await importJWK(identity.privateJwk, 'ES256'));
    await expect(jwtVerify(jwt, await importJWK(identity.publicJwk, 'ES256'))).resolves.toBeDefined();
  });

  it('loads the same key on the next start, under the client id it is given', async () => {
    const path = join(dir, 'agent-key.json');
    const first = await loadOrCreateAgentKey(path);
    const second = await loadOrCreateAgentKey(path, 'other-agent');
    expect(second.privateJwk).toEqual(first.privateJwk);
    expect(second.clientId).toBe('other-agent');
  });

  it('leaves exactly one key when several creators race (concurrent file system calls)', async () => {
    const path = join(dir, 'agent-key.json');
    const racers = await Promise.all(Array.from({ length: 16 }, () => loadOrCreateAgentKey(path)));
    const kids = new Set(racers.map((i) => i.publicJwk.kid));
    expect(kids.size).toBe(1);
    expect(JSON.parse(await readFile(path, 'utf8')).kid).toBe([...kids][0]);
    // No temporary files are left behind.
    expect(await readdir(dir)).toEqual(['agent-key.json']);
  });

  it('refuses a corrupt file and leaves it untouched', async () => {
    const path = join(dir, 'agent-key.json');
    await writeFile(path, '{"kty":"EC",', { mode: 0o600 });
    const error = await loadOrCreateAgentKey(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AgentKeyError);
    expect((error as AgentKeyError).code).toBe('corrupt');
    expect(await readFile(path, 'utf8')).toBe('{"kty":"EC",');
  });

  it('refuses a file that holds a public key only, or another kind of key', async () => {
    const path = join(dir, 'agent-key.json');
    const { publicJwk } = await loadOrCreateAgentKey(join(dir, 'seed.json'));
    await writeFile(path, JSON.stringify(publicJwk), { mode: 0o600 });
    await expect(loadOrCreateAgentKey(path)).rejects.toMatchObject({ code: 'corrupt' });
    await writeFile(path, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'a', d: 'b' }), { mode: 0o600 });
    await expect(loadOrCreateAgentKey(path)).rejects.toMatchObject({ code: 'corrupt' });
  });

  it('refuses a key file that other users can read', async () => {
    const path = join(dir, 'agent-key.json');
    await loadOrCreateAgentKey(path);
    await chmod(path, 0o644);
    await expect(loadOrCreateAgentKey(path)).rejects.toMatchObject({ code: 'insecure_permissions' });
  });
});
