// Comparing resource URLs and origins with every loopback name of one listener counted as one (the refusals of
// agents at a URL that is something else's), and which hosts are this machine's loopback.
import { describe, expect, it } from 'vitest';
import { isAnyLoopbackHost, isLoopbackName, resourceWithin, sameOriginOrLoopbackAlias, sameResourceOrLoopbackAlias } from '../../src/delegation/resource.js';
import { unverifiedAudience } from '../../src/delegation/tokens.js';

describe('sameOriginOrLoopbackAlias', () => {
  it.each([
    ['http://localhost:8410/mcp', 'http://127.0.0.1:8410'],
    ['http://127.0.0.2:8410', 'http://127.0.0.1:8410/'],
    ['http://[::1]:8410/x?y=1', 'http://localhost:8410'],
    ['http://[::ffff:127.0.0.1]:8410', 'http://127.0.0.1:8410'],
    ['http://[::ffff:127.9.8.7]:8410', 'http://localhost:8410'],
    ['HTTP://LOCALHOST:8410', 'http://127.1:8410'],
    ['http://localhost', 'http://127.0.0.1:80'],
    ['https://auth.example.com', 'https://auth.example.com:443/token'],
    // One DNS name with and without its trailing dot (RFC 1034 §3.1); found in review, regress20a.
    ['https://cal.example.com./mcp', 'https://cal.example.com'],
    ['http://localhost.:8410', 'http://127.0.0.1:8410'],
  ])('%s and %s are one origin', (a, b) => {
    expect(sameOriginOrLoopbackAlias(a, b)).toBe(true);
    expect(sameOriginOrLoopbackAlias(b, a)).toBe(true);
  });

  it.each([
    ['http://localhost:8411', 'http://127.0.0.1:8410'],
    ['https://localhost:8410', 'http://127.0.0.1:8410'],
    ['http://[::ffff:128.0.0.1]:8410', 'http://127.0.0.1:8410'],
    ['http://[::7f00:1]:8410', 'http://127.0.0.1:8410'],
    ['http://auth.example.com:8410', 'http://127.0.0.1:8410'],
    ['http://localhost.example.com:8410', 'http://localhost:8410'],
    ['https://cal.example.com..', 'https://cal.example.com'],
    ['not a url', 'not a url'],
  ])('%s and %s are not', (a, b) => {
    expect(sameOriginOrLoopbackAlias(a, b)).toBe(false);
  });
});

describe('sameResourceOrLoopbackAlias', () => {
  it('takes another loopback name for the same scheme, port, path and query, in canonical form', () => {
    expect(sameResourceOrLoopbackAlias('http://localhost:8411/', 'http://127.0.0.1:8411')).toBe(true);
    expect(sameResourceOrLoopbackAlias('HTTP://[::1]:8412/mcp', 'http://127.0.0.2:8412/mcp')).toBe(true);
    expect(sameResourceOrLoopbackAlias('http://localhost:8412/mcp', 'http://127.0.0.1:8412/MCP')).toBe(false);
    expect(sameResourceOrLoopbackAlias('http://localhost:8412/mcp', 'http://127.0.0.1:8412/mcp?x=1')).toBe(false);
    expect(sameResourceOrLoopbackAlias('http://localhost:8412/mcp', 'http://127.0.0.1:8412')).toBe(false);
    expect(sameResourceOrLoopbackAlias('http://example.com/mcp', 'http://127.0.0.1/mcp')).toBe(false);
  });
});

describe('which hosts are loopback, as a URL’s hostname spells them', () => {
  const hostname = (url: string) => new URL(url).hostname;
  it('any loopback address (isAnyLoopbackHost): localhost, 127.0.0.0/8, ::1 and 127.0.0.0/8 IPv4-mapped', () => {
    for (const url of ['http://localhost', 'http://127.0.0.1', 'http://127.1', 'http://127.255.255.254', 'http://[::1]', 'http://[0:0::1]', 'http://[::ffff:127.0.0.1]', 'http://[::FFFF:127.9.8.7]']) {
      expect(isAnyLoopbackHost(hostname(url)), url).toBe(true);
    }
    for (const url of ['http://128.0.0.1', 'http://[::ffff:128.0.0.1]', 'http://[::ffff:10.0.0.1]', 'http://[::127.0.0.1]', 'http://[::2]', 'http://localhost.example.com', 'http://127.0.0.1.example.com']) {
      expect(isAnyLoopbackHost(hostname(url)), url).toBe(false);
    }
  });

  it('the loopback names (isLoopbackName, RFC 8252 §7.3 and §8.3): 127.0.0.1, [::1] and localhost only', () => {
    for (const url of ['http://localhost', 'http://127.0.0.1', 'http://127.1', 'http://[::1]']) expect(isLoopbackName(hostname(url)), url).toBe(true);
    for (const url of ['http://127.0.0.2', 'http://[::ffff:127.0.0.1]', 'http://localhost.example.com']) expect(isLoopbackName(hostname(url)), url).toBe(false);
  });
});

describe('resourceWithin (a resource its metadata may name, for DELEGATE_TOKEN with --agent-url)', () => {
  it('is the resource itself or a whole-segment parent on its origin', () => {
    for (const parent of ['https://a.example/x/mcp', 'https://A.example:443/x/mcp', 'https://a.example', 'https://a.example/', 'https://a.example/x', 'https://a.example/x/']) {
      expect(resourceWithin('https://a.example/x/mcp', parent), parent).toBe(true);
    }
    for (const other of ['https://a.example/x/mc', 'https://a.example/x/mcp/y', 'https://a.example/xy', 'http://a.example', 'https://a.example:8443', 'https://b.example', 'not a url']) {
      expect(resourceWithin('https://a.example/x/mcp', other), other).toBe(false);
    }
  });
});

describe('unverifiedAudience', () => {
  const jwt = (payload: unknown, header: unknown = {}) => `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.c2ln`;
  it('reads a JWT\'s string or string-array aud as a list', () => {
    expect(unverifiedAudience(jwt({ aud: 'https://a.example/mcp' }))).toEqual({ kind: 'audience', audiences: ['https://a.example/mcp'] });
    expect(unverifiedAudience(jwt({ aud: ['x', 'y'] }))).toEqual({ kind: 'audience', audiences: ['x', 'y'] });
    expect(unverifiedAudience(jwt({ aud: [] }))).toEqual({ kind: 'audience', audiences: [] });
  });

  // Review regress20e, 5: a JWT without an aud, or with one RFC 7519 §4.1.3 does not allow, was taken for an opaque token.
  it('tells a JWT without an audience, or with one that is no string or array of strings, from an opaque token', () => {
    expect(unverifiedAudience(jwt({}))).toEqual({ kind: 'missing' });
    for (const aud of [3, null, { url: 'x' }, ['x', 1], true]) expect(unverifiedAudience(jwt({ aud })), JSON.stringify(aud)).toEqual({ kind: 'malformed' });
    for (const token of [jwt(null), jwt([]), jwt({}, 'header'), jwt({}, null), 'opaque', 'a.b', 'a.!!.c', 'a.b.c.d', `${jwt({ aud: 'x' })}.d.e`]) {
      expect(unverifiedAudience(token), token).toEqual({ kind: 'opaque' });
    }
  });
});
