// Whether the CLI may start an authorization code sign-in at an authorization
// server, judged from its RFC 8414 metadata alone: only if the metadata says it
// takes PKCE with S256. The MCP authorization spec (2025-11-25, "Authorization
// Code Protection") makes this the client's check: without
// code_challenge_methods_supported, clients MUST refuse to proceed; a server
// that may ignore the challenge leaves a stolen or injected code redeemable
// (RFC 9700 §2.1.1, §4.5, §4.7.1). The SDK's auth() registers first and then
// checks only a list that is there, and guesses /authorize for a server that
// publishes no metadata, so the provider asks this before anything is kept.
import { printableClipped } from '../terminal-text.js';
import { ClientError } from './errors.js';

/** The only code challenge method the CLI uses (RFC 7636 §4.2; OAuth 2.1 §4.1.1). */
const PKCE_METHOD = 'S256';

const RULE = 'MCP authorization spec, "Authorization Code Protection": without S256 in code_challenge_methods_supported, a client must refuse to proceed';

/** The refusal to sign in at `issuer` given the metadata discovery found there (undefined: none), or undefined when S256 is listed. */
export function pkceRefusal(issuer: string, metadata: Record<string, unknown> | undefined): ClientError | undefined {
  const methods = metadata?.code_challenge_methods_supported;
  if (Array.isArray(methods) && methods.includes(PKCE_METHOD)) return undefined;
  const found =
    metadata === undefined
      ? 'publishes no metadata (RFC 8414)'
      : methods === undefined
        ? 'does not say in its metadata that it supports PKCE (no code_challenge_methods_supported)'
        : `does not support PKCE with ${PKCE_METHOD} (its code_challenge_methods_supported: ${printableClipped(JSON.stringify(methods) ?? String(methods), 100)})`;
  // The issuer is the agent's word (its RFC 9728 metadata): shown printable and clipped, as the list is.
  return new ClientError('AUTHORIZATION_FAILED', `The authorization server ${printableClipped(issuer, 200)} ${found}; delegate does not sign in there (${RULE}).`);
}
