// The local owner's sign-in link (docs/internals.md, "Local owner sign-in"):
// the CLI proves it runs as the OS user who owns the data directory by
// signing a short-lived, single-use assertion with the private key in
// owner-key.json (ES256, 0600 in the 0700 data directory), and sends the
// browser to <issuer>/login/owner, which signs the owner in and continues to
// the authorization request. Only at an authorization server that says it
// runs from this data directory (DATA_DIRECTORY_HEADER with its metadata): it
// alone trusts the key in this directory's owner-key.json.
import { createHash, randomBytes } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { DATA_DIRECTORY_HEADER, dataDirectoryId } from '../data-directory-id.js';
import { SIGNING_ALG, isAnyLoopbackHost } from '../delegation/index.js';
import { notARegularFile } from '../regular-file.js';
import { ClientError } from './errors.js';
import { createPrivateFileExclusive, isErrno, readPrivateFile } from './private-files.js';

export const OWNER_ASSERTION_ISSUER = 'delegate-cli';
export const OWNER_ASSERTION_SUBJECT = 'owner';
export const OWNER_LOGIN_PATH = '/login/owner';
/** Long enough to open the link from another terminal, and within the 120 s the contract allows. */
export const OWNER_ASSERTION_LIFETIME_SEC = 120;
/**
 * The link to a device's code page (`login --device`) is opened on another device, maybe minutes later: it may live
 * until the device code expires, at most this long (the authorization server's device code lifetime, which it allows
 * for that page alone, and only while that device request waits).
 */
export const OWNER_DEVICE_LINK_MAX_LIFETIME_SEC = 600;
const DEVICE_PAGE_PREFIX = '/device?';

/**
 * The owner's private key (a JWK with `kid` = RFC 7638 thumbprint and `alg`),
 * created on first use. Creation is exclusive, so when the CLI and the
 * authorization server race to create it, both end up with the same key. A
 * file others can read, or one that holds no usable key, is refused, never
 * replaced: its key may already be the one the server trusts.
 */
export async function loadOrCreateOwnerKey(path: string): Promise<JWK> {
  const existing = await readOwnerKey(path);
  if (existing) return existing;
  const { privateKey } = await generateKeyPair(SIGNING_ALG, { extractable: true });
  const jwk = await exportJWK(privateKey);
  const { d: _secret, ...publicHalf } = jwk;
  const created: JWK = { ...jwk, kid: await calculateJwkThumbprint(publicHalf), alg: SIGNING_ALG };
  if (await createPrivateFileExclusive(path, `${JSON.stringify(created, null, 2)}\n`)) return created;
  const theirs = await readOwnerKey(path);
  if (!theirs) throw new ClientError('OWNER_KEY', `The owner key ${path} vanished while it was being created.`);
  return theirs;
}

async function readOwnerKey(path: string): Promise<JWK | undefined> {
  try {
    const info = await stat(path);
    const kind = notARegularFile(info, 'a key file');
    if (kind !== undefined) throw new ClientError('OWNER_KEY', `The owner key ${path} is ${kind}; move it away.`);
    const mode = info.mode;
    if ((mode & 0o077) !== 0) {
      throw new ClientError('OWNER_KEY', `The owner key ${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); make it 0600 or delete it.`);
    }
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return undefined;
    throw error;
  }
  const text = await readPrivateFile(path, 'a key file');
  if (text === undefined) return undefined;
  let jwk: JWK;
  try {
    jwk = JSON.parse(text) as JWK;
  } catch {
    throw new ClientError('OWNER_KEY', `The owner key ${path} is not valid JSON; it was left as it is.`);
  }
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') {
    throw new ClientError('OWNER_KEY', `The owner key ${path} is not an ES256 private key; it was left as it is.`);
  }
  return jwk;
}

export interface OwnerAssertionInput {
  key: JWK;
  /** The authorization server's issuer identifier: the assertion's audience. */
  issuer: string;
  now: () => number;
  lifetimeSec?: number;
  /** A device's code page: the link lives until then (epoch ms), within OWNER_DEVICE_LINK_MAX_LIFETIME_SEC. */
  until?: number;
  /** The path and query the link continues to (ownerLoginNext): the assertion is good for that page only. */
  next: string;
  /**
   * The request is another app's (`delegate approve`), not this CLI's: the server always shows its consent page and
   * never names the app as the owner's own command (OWNER_ASSERTION_APPROVAL_CLAIM).
   */
  approval?: boolean;
}

/** The claim that ties an assertion to the one page its link continues to: SHA-256 of `next`, base64url. */
export const OWNER_ASSERTION_NEXT_CLAIM = 'next_sha256';
/** `true` when the link is for another app's request (`delegate approve`): src/authz/owner-login.ts. */
export const OWNER_ASSERTION_APPROVAL_CLAIM = 'approval';

export function nextDigest(next: string): string {
  return createHash('sha256').update(next, 'utf8').digest('base64url');
}

/** What follows the owner's sign-in: the authorization (or device) URL's path and query, relative so the server can insist it stays on itself. */
export function ownerLoginNext(authorizationUrl: URL): string {
  return `${authorizationUrl.pathname}${authorizationUrl.search}`;
}

/**
 * The signed login assertion: iss "delegate-cli", sub "owner", aud issuer, jti of 256 random bits, exp ≤ 120 s
 * (a device's code page: until `until`, ≤ 600 s), and the digest of the page it continues to: whoever reads the link
 * off a command line cannot point it elsewhere.
 */
export async function signOwnerAssertion(input: OwnerAssertionInput): Promise<string> {
  const iat = Math.floor(input.now() / 1000);
  const devicePage = input.next.startsWith(DEVICE_PAGE_PREFIX) && input.until !== undefined;
  const lifetime = devicePage
    ? Math.max(1, Math.min(Math.floor(input.until! / 1000) - iat, OWNER_DEVICE_LINK_MAX_LIFETIME_SEC))
    : Math.min(input.lifetimeSec ?? OWNER_ASSERTION_LIFETIME_SEC, OWNER_ASSERTION_LIFETIME_SEC);
  const key = await importJWK(input.key, SIGNING_ALG);
  const header: { alg: string; typ: string; kid?: string } = { alg: SIGNING_ALG, typ: 'JWT' };
  if (input.key.kid) header.kid = input.key.kid;
  const claims = { [OWNER_ASSERTION_NEXT_CLAIM]: nextDigest(input.next), ...(input.approval ? { [OWNER_ASSERTION_APPROVAL_CLAIM]: true } : {}) };
  return new SignJWT(claims)
    .setProtectedHeader(header)
    .setIssuer(OWNER_ASSERTION_ISSUER)
    .setSubject(OWNER_ASSERTION_SUBJECT)
    .setAudience(input.issuer)
    .setJti(randomBytes(32).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + lifetime)
    .sign(key);
}

/**
 * The assertion the CLI adds to the token request of a sign-in through the
 * owner's link (OWNER_ASSERTION_PARAMETER, an RFC 6749 §3.2 extension
 * parameter): the same claims as the link's, but for the token endpoint (its
 * audience) and for no page, so that neither can be used as the other. With
 * it the authorization server issues tokens only for a code the owner
 * approved (src/authz/owner-proof.ts): another account that approved this
 * CLI's request, read off a command line, gets its approval revoked.
 */
export async function signOwnerTokenAssertion(input: { key: JWK; tokenEndpoint: string; now: () => number }): Promise<string> {
  const iat = Math.floor(input.now() / 1000);
  const key = await importJWK(input.key, SIGNING_ALG);
  const header: { alg: string; typ: string; kid?: string } = { alg: SIGNING_ALG, typ: 'JWT' };
  if (input.key.kid) header.kid = input.key.kid;
  return new SignJWT({})
    .setProtectedHeader(header)
    .setIssuer(OWNER_ASSERTION_ISSUER)
    .setSubject(OWNER_ASSERTION_SUBJECT)
    .setAudience(input.tokenEndpoint)
    .setJti(randomBytes(32).toString('base64url'))
    .setIssuedAt(iat)
    .setExpirationTime(iat + OWNER_ASSERTION_LIFETIME_SEC)
    .sign(key);
}

/** The owner's token assertion for `tokenEndpoint`, signed with the key in `ownerKeyPath` (created if missing, as for the link). */
export async function ownerTokenAssertion(ownerKeyPath: string, tokenEndpoint: string, now: () => number): Promise<string> {
  return signOwnerTokenAssertion({ key: await loadOrCreateOwnerKey(ownerKeyPath), tokenEndpoint, now });
}

/**
 * <issuer>/login/owner?assertion=…&next=<path and query of the authorization URL>.
 * `next` is relative, so the server can insist it stays on itself.
 */
export function ownerLoginUrl(issuer: string, assertion: string, authorizationUrl: URL): string {
  const link = new URL(`${issuer.replace(/\/+$/, '')}${OWNER_LOGIN_PATH}`);
  link.searchParams.set('assertion', assertion);
  link.searchParams.set('next', ownerLoginNext(authorizationUrl));
  return link.href;
}

/**
 * What an authorization server said of the data directory it runs from (DATA_DIRECTORY_HEADER, which delegate's servers
 * send with their metadata at a loopback URL), compared with the one that holds this CLI's owner key: `this`, `other`,
 * or undefined when it said nothing.
 */
export type ServerDataDirectory = 'this' | 'other' | undefined;

/**
 * The data directory identities that the servers a sign-in meets send with their metadata, noted by origin as the
 * sign-in's own discovery requests pass (its fetch, observed): no request of its own.
 */
export class DataDirectoriesSaid {
  private readonly said = new Map<string, string>();

  observe(fetchFn: FetchLike): FetchLike {
    return async (url, init) => {
      const res = await fetchFn(url, init);
      const sent = res.headers.get(DATA_DIRECTORY_HEADER);
      if (sent !== null) {
        try {
          this.said.set(new URL(res.url || String(url)).origin, sent);
        } catch {
          // not a URL: nothing noted
        }
      }
      return res;
    };
  }

  /** What the authorization server `issuer` said of its data directory, compared with the one that holds `ownerKeyPath`. */
  async of(issuer: string, ownerKeyPath: string): Promise<ServerDataDirectory> {
    let origin: string;
    try {
      origin = new URL(issuer).origin;
    } catch {
      return undefined;
    }
    const sent = this.said.get(origin);
    if (sent === undefined) return undefined;
    return sent === (await dataDirectoryId(dirname(ownerKeyPath))) ? 'this' : 'other';
  }
}

/**
 * Whether the owner link applies: the authorization server runs on this
 * machine (a loopback issuer, where it can share the data directory's key),
 * the authorization URL is on it, and so is the agent signed in for: an agent
 * elsewhere whose metadata names an authorization server on this machine's
 * loopback gets no owner's link and no owner key made for it (found in
 * review, regress20c). And the server said it runs from this data directory
 * (`serverDataDirectory`, DataDirectoriesSaid): one of another data directory
 * (a colleague's `serve` on this computer, reached by --agent-url) trusts
 * another owner key, and refused the link, or a device sign-in's assertions
 * after the person had approved (found in review, s33team); one that says
 * nothing is not known to be this directory's. Otherwise the plain
 * authorization URL is opened and the server signs the user in its own way
 * (a named account's password).
 */
export function ownerLoginApplies(issuer: string, authorizationUrl: URL, agentUrl: string, serverDataDirectory: ServerDataDirectory): boolean {
  if (serverDataDirectory !== 'this') return false;
  let origin: URL;
  let agent: URL;
  try {
    origin = new URL(issuer);
    agent = new URL(agentUrl);
  } catch {
    return false;
  }
  // Any loopback address is this machine (`serve --host 127.0.0.2`), not only the names of RFC 8252's redirect URIs.
  return isAnyLoopbackHost(origin.hostname) && origin.origin === authorizationUrl.origin && isAnyLoopbackHost(agent.hostname);
}

export interface LoginLinkInput {
  authorizationUrl: URL;
  issuer: string;
  /** The agent signed in for: the owner's link applies only when it is on this machine too (ownerLoginApplies). */
  agentUrl: string;
  /** What the authorization server said of its data directory: the owner's link applies only for `this` (ownerLoginApplies). */
  serverDataDirectory: ServerDataDirectory;
  ownerKeyPath: string;
  now: () => number;
  /** For a device's code page (verification_uri_complete): when its device code expires (epoch ms), which the link lasts until. */
  until?: number;
}

/** The URL to show and open: the owner's sign-in link when it applies, else the authorization URL itself. */
export async function loginLinkFor(input: LoginLinkInput): Promise<string> {
  if (!ownerLoginApplies(input.issuer, input.authorizationUrl, input.agentUrl, input.serverDataDirectory)) return input.authorizationUrl.href;
  const key = await loadOrCreateOwnerKey(input.ownerKeyPath);
  const assertion = await signOwnerAssertion({
    key,
    issuer: input.issuer,
    now: input.now,
    next: ownerLoginNext(input.authorizationUrl),
    ...(input.until !== undefined ? { until: input.until } : {}),
  });
  return ownerLoginUrl(input.issuer, assertion, input.authorizationUrl);
}
