// The redirect URI registration policy (src/authz/policy/redirect-uri.ts) as a pure function: private-use
// schemes of native apps (RFC 8252 §7.1) are taken, schemes that are not an app's own and strings a URL parser
// would read as something else are not. test/security/private-use-redirect.test.ts covers the same on the wire.
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
