// CalendarAgent's own identity at the authorization server: the ES256 key pair
// it signs private_key_jwt client assertions with (RFC 7523 §2.2), kept as a
// private JWK in the data directory (`agent-key.json`, 0600 in a 0700
// directory). The first process to need the key creates it; a process racing
// it reads the winner's key, so there is only ever one.
import { randomBytes } from 'node:crypto';
import { chmod, link, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { SIGNING_ALG } from '../delegation/index.js';
import { notARegularFile } from '../regular-file.js';
import { makeOwnDirectory } from '../trusted-directory.js';

export const DEFAULT_AGENT_CLIENT_ID = 'calendar-agent';

export interface AgentIdentity {
  /** The agent's client id at the authorization server. */
  clientId: string;
  /** ES256 private key with `kid` (RFC 7638 thumbprint) and `alg`: signs client assertions. */
  privateJwk: JWK;
  /** Its public half, for the agent's client registration (`jwks`). */
  publicJwk: JWK;
}

export type AgentKeyErrorCode = 'corrupt' | 'insecure_permissions' | 'not_a_file' | 'io';

/** Why the agent's key file cannot be used; the file is left as it is. */
export class AgentKeyError extends Error {
  readonly code: AgentKeyErrorCode;
  readonly path: string;

  constructor(code: AgentKeyErrorCode, path: string, message: string) {
    super(message);
    this.name = 'AgentKeyError';
    this.code = code;
    this.path = path;
  }
}

/**
 * Reads the agent's key from `path`, creating it first when there is none.
 * A file that exists but does not hold a usable ES256 private key is an
 * error, never overwritten: replacing it would silently change the agent's
 * identity at the authorization server.
 */
export async function loadOrCreateAgentKey(path: string, clientId: string = DEFAULT_AGENT_CLIENT_ID): Promise<AgentIdentity> {
  const existing = await readKeyFile(path);
  if (existing !== undefined) return identityFrom(clientId, path, existing);

  makeOwnDirectory(dirname(path), 'data directory');
  const created = await newPrivateJwk();
  const won = await createExclusively(path, `${JSON.stringify(created, null, 2)}\n`);
  if (won) return identityFrom(clientId, path, created);

  // Another process created the file first: its key is the agent's key.
  const theirs = await readKeyFile(path);
  if (theirs === undefined) throw new AgentKeyError('io', path, `The agent key file ${path} vanished while it was being created.`);
  return identityFrom(clientId, path, theirs);
}

/** The file's text, or undefined when it does not exist. */
async function readKeyFile(path: string): Promise<string | undefined> {
  try {
    const info = await stat(path);
    // Before its mode: a directory's 755 is no key readable by others (and a FIFO would be read for ever).
    const kind = notARegularFile(info, 'a key file');
    if (kind !== undefined) throw new AgentKeyError('not_a_file', path, `The agent key file ${path} is ${kind}; move it away.`);
    // Like ssh with an unprotected private key: refuse rather than use a key others can read.
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      throw new AgentKeyError(
        'insecure_permissions',
        path,
        `The agent key file ${path} is readable by other users (mode ${(info.mode & 0o777).toString(8)}); make it 0600.`,
      );
    }
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof AgentKeyError) throw err;
    if (isErrno(err, 'ENOENT')) return undefined;
    throw new AgentKeyError('io', path, `The agent key file ${path} cannot be read (${errnoCode(err)}).`);
  }
}

/**
 * Publishes `text` at `path` only if nothing is there yet, and never as a
 * half-written file: the text goes to a private temporary file (an exclusive
 * `wx` create, mode 0600), which is then hard-linked into place; link(2) fails
 * with EEXIST when another process got there first. Returns whether we won.
 */
async function createExclusively(path: string, text: string): Promise<boolean> {
  const temp = join(dirname(path), `.${randomBytes(8).toString('hex')}.agent-key.tmp`);
  try {
    await writeFile(temp, text, { flag: 'wx', mode: 0o600 });
    await chmod(temp, 0o600); // the umask may have narrowed, never widened, but be exact
    await link(temp, path);
    return true;
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw new AgentKeyError('io', path, `The agent key file ${path} cannot be created (${errnoCode(err)}).`);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function newPrivateJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: await calculateJwkThumbprint(jwk, 'sha256'), alg: SIGNING_ALG, use: 'sig' };
}

async function identityFrom(clientId: string, path: string, text: string | JWK): Promise<AgentIdentity> {
  const privateJwk = typeof text === 'string' ? parsePrivateJwk(path, text) : text;
  try {
    await importJWK(privateJwk, SIGNING_ALG);
  } catch {
    throw corrupt(path, 'its key is not a valid P-256 private key');
  }
  const { d: _d, ...publicParts } = privateJwk;
  const publicJwk: JWK = { kty: publicParts.kty, crv: publicParts.crv, x: publicParts.x, y: publicParts.y };
  // RFC 7638: the thumbprint covers only the required public members, so it names the key whatever else the file holds.
  const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
  if (privateJwk.kid !== undefined && privateJwk.kid !== kid) throw corrupt(path, 'its kid is not the key thumbprint');
  return {
    clientId,
    privateJwk: { ...privateJwk, kid, alg: SIGNING_ALG },
    publicJwk: { ...publicJwk, kid, alg: SIGNING_ALG, use: 'sig' },
  };
}

function parsePrivateJwk(path: string, text: string): JWK {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(path, 'it is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw corrupt(path, 'it is not a JWK object');
  const jwk = value as Record<string, unknown>;
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw corrupt(path, 'it is not a P-256 (ES256) key');
  for (const member of ['x', 'y', 'd'] as const) {
    if (typeof jwk[member] !== 'string' || jwk[member] === '') throw corrupt(path, `its "${member}" member is missing`);
  }
  if (jwk.alg !== undefined && jwk.alg !== SIGNING_ALG) throw corrupt(path, `its alg is not ${SIGNING_ALG}`);
  return jwk as JWK;
}

function corrupt(path: string, why: string): AgentKeyError {
  return new AgentKeyError('corrupt', path, `The agent key file ${path} is unusable: ${why}. Move it away to create a new key (the agent's client registration must then be updated).`);
}

function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

function errnoCode(err: unknown): string {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : 'unknown error';
}
