// Reading OAuth request parameters: each may appear once (RFC 6749 §3.1),
// and an empty value counts as absent.
import { parseForm, type FormBody } from '../http/app.js';
import { InvalidRequestError } from './errors.js';

/** The value of a parameter given at most once; a repeated parameter is an invalid_request. */
export function single(params: FormBody, name: string): string | undefined {
  const value = params[name];
  if (Array.isArray(value)) throw new InvalidRequestError(`The ${name} parameter is repeated.`);
  return value === undefined || value === '' ? undefined : value;
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
