// The redirect URI registration policy (src/authz/policy/redirect-uri.ts) as a pure function: private-use
// schemes of native apps (RFC 8252 §7.1) are taken, schemes that are not an app's own and strings a URL parser
// would read as something else (so the browser would go elsewhere than as written) are not.
// test/security/private-use-redirect.test.ts and redirect-uri-as-written.test.ts cover the same on the wire.
import { describe, expect, it } from 'vitest';
import { checkRegistrableRedirectUri, privateUseScheme, redirectDestination } from '../../src/authz/policy/redirect-uri.js';

describe('checkRegistrableRedirectUri', () => {
  it.each([
    'cursor://anysphere.cursor-mcp/oauth/callback',
    'com.example.app:/oauth2redirect/example-provider',
    'com.example.app://oauth2redirect',
    'vscode://vscode.github-authentication/did-authenticate',
    'x-my-app+beta.2:/cb',
    'https://app.example/cb',
    'http://127.0.0.1/callback',
    'http://[::1]:8080/callback',
    // Sent to as written, or as RFC 3986 §6.2 calls equivalent (host case, default port, a bare origin's /).
    'http://127.0.0.1:5555/callback',
    'http://localhost:5555',
    'http://localhost:5555/',
    'http://[::1]:5555/cb',
    'com.example.app:/cb',
    'https://App.Example.com/cb',
    'https://app.example.com:443/cb',
    'https://app.example/cb?client=1&x=~',
    'https://app.example/a%2Fb/%7Ecb',
    'https://xn--80ak6aa92e.com/cb',
    'cursor://anysphere.cursor-mcp/oauth/callback?x=1',
  ])('accepts %s', (uri) => {
    expect(checkRegistrableRedirectUri(uri)).toEqual({ ok: true });
  });

  it.each([
    ['javascript:/alert(1)', 'not an app'],
    ['vbscript:/x', 'not an app'],
    ['data:/text/html,x', 'not an app'],
    ['file:///etc/passwd', 'not an app'],
    ['blob:/https://a.example/1', 'not an app'],
    ['about:/blank', 'not an app'],
    ['view-source:/https://a.example/', 'not an app'],
    ['ms-msdt:/id', 'not an app'],
    ['web+mail:/x', 'not an app'],
    // Found in review s22new: registered, and described on the consent page as "the app on this device".
    ...['smb://evil.example/cb', 'ssh://evil/x', 'ms-settings:/x', 'ms-word:/x', 'shell:/x', 'itms-services://x', 'mhtml:/x', 'edge://settings', 'opera://x', 'brave://x', 'vivaldi://x', 'jar:/x', 'res:/x'].map(
      (uri) => [uri, 'not an app'],
    ),
    ['JAVASCRIPT:/alert(1)', 'lower-case scheme'],
    ['HTTPS://app.example/cb', 'lower-case scheme'],
    ['hTTp://127.0.0.1/cb', 'lower-case scheme'],
    [' https://app.example/cb', 'spaces or control'],
    ['https://app.example/cb\n', 'spaces or control'],
    ['java\tscript:/alert(1)', 'spaces or control'],
    ['cursor://a/b\u0085', 'spaces or control'],
    ['1app:/cb', 'lower-case scheme'],
    ['-app:/cb', 'lower-case scheme'],
    ['my_app:/cb', 'lower-case scheme'],
    ['com.example.app:cb', 'com.example.app:/path'],
    ['/callback', 'lower-case scheme'],
    ['http://example.com/cb', 'loopback'],
    // Found in review (s25rfc): no RFC 3986 URI, or read by a URL parser (the browser reading Location) as
    // another, so the code went elsewhere than the registered string (RFC 6749 §3.1.2, RFC 9700 §4.1.3).
    ['https://app.example.com/cb\\..\\other', 'RFC 3986 section 2'],
    ['http://127.0.0.1:5555/c"b\\é<x>', 'RFC 3986 section 2'],
    ['https://app.example/a|b', 'RFC 3986 section 2'],
    ['https://app.example/a%zzb', 'RFC 3986 section 2'],
    ['https://пример.example/cb', 'RFC 3986 section 2'],
    ['https://app.example/cb/../other', 'path segments'],
    ['https://app.example/./cb', 'path segments'],
    ['https://app.example/cb/%2E%2e/other', 'path segments'],
    ['https://app.example/cb/..', 'path segments'],
    ['com.example.app:/a/../b', 'path segments'],
    ['http://127.0.0.1:5555/cb?code=x', 'response parameter code'],
    ['https://app.example/cb?a=1&state=x', 'response parameter state'],
    ['https://app.example/cb?iss', 'response parameter iss'],
    ["https://app.example/cb?x='", 'is read as https://app.example/cb?x=%27'],
    ['https://0x7f.1/cb', 'is read as https://127.0.0.1/cb'],
    ['https://2130706433/cb', 'is read as https://127.0.0.1/cb'],
    ['https://app%2Eexample/cb', 'is read as https://app.example/cb'],
    ['https:app.example/cb', 'is read as https://app.example/cb'],
    ['https:///app.example/cb', 'is read as https://app.example/cb'],
    ['http://127.0.0.1:05555/cb', 'is read as http://127.0.0.1:5555/cb'],
    ['cursor://anysphere:0443/cb', 'is read as cursor://anysphere:443/cb'],
  ])('refuses %s', (uri, reason) => {
    const check = checkRegistrableRedirectUri(uri);
    expect(check.ok).toBe(false);
    expect(check.ok ? '' : check.reason).toContain(reason);
  });
});

describe('privateUseScheme and redirectDestination', () => {
  it('name an app’s scheme, and a site’s host', () => {
    expect(privateUseScheme(new URL('cursor://anysphere.cursor-mcp/oauth/callback'))).toBe('cursor');
    expect(privateUseScheme(new URL('https://app.example/cb'))).toBeUndefined();
    expect(privateUseScheme(new URL('http://127.0.0.1/cb'))).toBeUndefined();
    expect(redirectDestination(new URL('com.example.app:/cb'))).toBe('com.example.app:');
    expect(redirectDestination(new URL('https://app.example:8443/cb'))).toBe('app.example:8443');
  });
});
