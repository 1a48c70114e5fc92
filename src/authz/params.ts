// Reading OAuth request parameters: each may appear once (RFC 6749 §3.1),
// and an empty value counts as absent.
import { parseForm, type FormBody } from '../http/app.js';
import { InvalidRequestError, InvalidTargetError } from './errors.js';

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
