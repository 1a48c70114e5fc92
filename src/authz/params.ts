// Reading OAuth request parameters: each may appear once (RFC 6749 §3.1),
// and an empty value counts as absent.
import { isWellFormedScope, parseScope } from '../delegation/index.js';
import { parseForm, type FormBody } from '../http/app.js';
import { InvalidRequestError, InvalidScopeError, InvalidTargetError } from './errors.js';

/** The value of a parameter given at most once; a repeated parameter is an invalid_request. */
export function single(params: FormBody, name: string): string | undefined {
  const value = params[name];
  if (Array.isArray(value)) throw new InvalidRequestError(`The ${name} parameter is repeated.`);
  return value === undefined || value === '' ? undefined : value;
}

/**
 * The one target a token request names in `resource` (RFC 8707) or `audience` (RFC 8693), if any. RFC 8707 §2
 * allows several; this server issues a token for one, so several are a target it will not issue for:
 * invalid_target, not a repeated parameter.
 */
export function singleTarget(params: FormBody, name: 'resource' | 'audience'): string | undefined {
  const value = params[name];
  if (Array.isArray(value)) throw new InvalidTargetError(oneTargetOnly(name, value.length));
  return single(params, name);
}

export function oneTargetOnly(name: 'resource' | 'audience', given: number): string {
  return `This server issues a token for one ${name} at a time; the request names ${given}.`;
}

/** A scope value read (readScope): its distinct tokens, undefined when none was sent; or why it is malformed. */
export type ScopeReading = { ok: true; scopes: string[] | undefined } | { ok: false; reason: string };

/**
 * A `scope` value as sent (undefined or empty: absent, RFC 6749 §3.1). RFC 6749 §3.3's syntax, scope-token
 * *( SP scope-token ), is held to: spaces only, a leading, trailing or doubled space, a tab, or any other character
 * outside scope-token is malformed, which every endpoint answers invalid_scope before it reads or spends anything
 * (found in review regress21b: `scope=%20` at the refresh grant spent the rotation on a token with no scope, and
 * the token exchange took it as absent, while a tab was invalid_scope).
 */
export function readScope(value: string | undefined): ScopeReading {
  if (value === undefined || value === '') return { ok: true, scopes: undefined };
  if (!isWellFormedScope(value)) return { ok: false, reason: 'The scope must be scope tokens separated by single spaces (RFC 6749 section 3.3).' };
  return { ok: true, scopes: parseScope(value) };
}

/** The request's `scope` (readScope), given at most once; malformed: invalid_scope. */
export function scopeParam(params: FormBody): string[] | undefined {
  const read = readScope(single(params, 'scope'));
  if (!read.ok) throw new InvalidScopeError(read.reason);
  return read.scopes;
}

export function required(params: FormBody, name: string): string {
  const value = single(params, name);
  if (value === undefined) throw new InvalidRequestError(`The ${name} parameter is required.`);
  return value;
}

/** Query parameters as a FormBody (repeated ones kept as arrays). */
export function queryParams(url: string): FormBody {
  const q = url.indexOf('?');
  return q === -1 ? {} : parseForm(url.slice(q + 1));
}
