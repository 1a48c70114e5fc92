// An agent's key as a JWK file, read the same way where it is registered
// (`agents register --key`, the public half) and where it signs (`token
// exchange --key`, the private key): one P-256 key, named by the same kid on
// both sides. A key without a kid is named by its RFC 7638 thumbprint, which
// is computed from the public members alone, so the registered key and the
// private key it came from get the same kid. The authorization server still
// finds an assertion's key by its exact kid among the agent's registered keys
// (SECURITY.md, "kid injection"); nothing there guesses a key.
import { readFile, stat } from 'node:fs/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { NAMED_ON_THE_COMMAND_LINE, notARegularFile } from '../regular-file.js';
import { CommandFailed } from './errors.js';

/** The public half of a JWK file (a private key's `d` is dropped), with its kid (default: its thumbprint). */
export async function readAgentPublicKey(file: string): Promise<JWK> {
  const jwk = await readJwk(file, `${file} does not hold a JSON Web Key.`);
  const publicJwk = p256Public(jwk, file);
  return { ...publicJwk, kid: await agentKeyId(jwk), alg: 'ES256', use: 'sig' };
}

/** The private key of a JWK file, with the kid it was registered under (default: its thumbprint, as `readAgentPublicKey`). */
export async function readAgentPrivateKey(file: string): Promise<{ jwk: JWK; kidFromThumbprint: boolean }> {
  const jwk = await readJwk(file, `${file} does not hold the acting agent's private key.`);
  if (typeof jwk.d !== 'string') throw new CommandFailed(`${file} does not hold the acting agent's private key.`);
  p256Public(jwk, file);
  const named = typeof jwk.kid === 'string' && jwk.kid !== '';
  return { jwk: { ...jwk, kid: await agentKeyId(jwk) }, kidFromThumbprint: !named };
}

/** The key's kid as it is registered: its own, or the RFC 7638 thumbprint of its public members. */
async function agentKeyId(jwk: JWK): Promise<string> {
  if (typeof jwk.kid === 'string' && jwk.kid !== '') return jwk.kid;
  return calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
}

function p256Public(jwk: JWK, file: string): JWK {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) throw new CommandFailed(`${file} is not an ES256 (P-256) key.`);
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

async function readJwk(file: string, notAKey: string): Promise<JWK> {
  let value: unknown;
  try {
    const kind = notARegularFile(await stat(file), 'a key file', NAMED_ON_THE_COMMAND_LINE);
    if (kind !== undefined) throw new CommandFailed(`The key file ${file} is ${kind}.`);
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if (error instanceof CommandFailed) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new CommandFailed(`The key file ${file} does not exist.`);
    throw new CommandFailed(notAKey);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new CommandFailed(notAKey);
  return value as JWK;
}
