// A headless MCP client for the MCP conformance suite's client mode
// (`conformance client --command "node dist/conformance/client.js
// --headless" …`): it takes the server URL as its last argument, reads
// MCP_CONFORMANCE_SCENARIO and MCP_CONFORMANCE_CONTEXT, and does what the
// CLI does — discovery from the 401, registration (or pre-registered
// credentials, or a client ID metadata document), PKCE, the loopback
// listener's checks of state and iss — with a fresh token cache in a temp
// directory for every run. With --headless it plays the browser itself: it
// follows the authorization server's redirects to its own listener instead
// of printing the link. Then it lists the tools and calls the first one,
// stepping up its scope when the server asks (a few times at most).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError, type OAuthClientProvider, type OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { conformanceSettings, processEnv } from '../config.js';
import { TokenCache } from '../client/cache.js';
import { startLoopbackListener, type LoopbackListener } from '../client/loopback.js';
import { CacheOAuthProvider, type AuthorizationRequestContext } from '../client/provider.js';

/** How many times one operation may send the user back to authorize (scope step-up), as a client should bound it. */
const MAX_AUTHORIZATIONS_PER_CALL = 2;
const MAX_REDIRECT_HOPS = 10;

interface Options {
  serverUrl: string;
  headless: boolean;
  clientMetadataUrl: string | undefined;
}

function parseArgs(argv: string[]): Options {
  const serverUrl = argv.at(-1);
  if (!serverUrl || !/^https?:\/\//.test(serverUrl)) throw new Error('usage: client.js [--headless] [--client-metadata-url URL] <server-url>');
  const at = argv.indexOf('--client-metadata-url');
  return { serverUrl, headless: argv.includes('--headless'), clientMetadataUrl: at >= 0 ? argv[at + 1] : undefined };
}

/**
 * The CLI's cache-backed provider, plus what a conformance scenario may
 * hand the client: pre-registered credentials (MCP_CONFORMANCE_CONTEXT) and
 * a client ID metadata document URL (used only where the server supports it).
 */
class ConformanceProvider implements OAuthClientProvider {
  constructor(
    private readonly inner: CacheOAuthProvider,
    private readonly preRegistered: OAuthClientInformationMixed | undefined,
    readonly clientMetadataUrl: string | undefined,
  ) {}
  get redirectUrl() {
    return this.inner.redirectUrl;
  }
  get clientMetadata(): OAuthClientMetadata {
    return { ...this.inner.clientMetadata, client_name: 'delegate conformance client' };
  }
  state() {
    return this.inner.state();
  }
  clientInformation() {
    return this.preRegistered ?? this.inner.clientInformation();
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    return this.inner.saveClientInformation(info);
  }
  tokens() {
    return this.inner.tokens();
  }
  saveTokens(tokens: OAuthTokens) {
    return this.inner.saveTokens(tokens);
  }
  redirectToAuthorization(url: URL) {
    return this.inner.redirectToAuthorization(url);
  }
  saveCodeVerifier(verifier: string) {
    return this.inner.saveCodeVerifier(verifier);
  }
  codeVerifier() {
    return this.inner.codeVerifier();
  }
  invalidateCredentials(scope: 'all' | 'client' | 'tokens' | 'verifier' | 'discovery') {
    return this.inner.invalidateCredentials(scope);
  }
  saveDiscoveryState(state: OAuthDiscoveryState) {
    return this.inner.saveDiscoveryState(state);
  }
  /** None: like the CLI's sign-in, every authorization discovers afresh (the protected resource may have moved to another authorization server). */
  discoveryState() {
    return undefined;
  }
}

/** The browser, played: follow the authorization server's redirects until one leaves for the client's redirect URI. */
async function followToRedirectUri(authorizationUrl: URL, redirectUri: string): Promise<string> {
  let current = authorizationUrl.href;
  for (let hop = 0; hop < MAX_REDIRECT_HOPS; hop++) {
    const res = await fetch(current, { redirect: 'manual', signal: AbortSignal.timeout(15_000) });
    await res.body?.cancel();
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) throw new Error(`the authorization server answered ${res.status} without sending the browser back`);
    const next = new URL(location, current).href;
    if (next.startsWith(redirectUri)) return next;
    current = next;
  }
  throw new Error('too many redirects');
}

async function main(): Promise<number> {
  const options = parseArgs(process.argv.slice(2));
  const settings = conformanceSettings(processEnv());
  const home = await mkdtemp(join(tmpdir(), 'delegate-conformance-'));
  let listener: LoopbackListener | undefined;
  let port = 0;
  try {
    const cache = new TokenCache({ files: { tokenCache: join(home, 'tokens.json'), tokenLock: join(home, 'tokens.lock') }, now: Date.now });
    // One listener per authorization, always on the port of the first, so the redirect URI stays the same.
    const listen = async (): Promise<LoopbackListener> => {
      await listener?.close();
      listener = await startLoopbackListener({ timeoutMs: 5 * 60_000, port });
      port = Number(new URL(listener.redirectUrl).port);
      return listener;
    };
    await listen();
    const redirectUrl = listener!.redirectUrl;
    const inner = new CacheOAuthProvider({
      cache,
      snapshot: await cache.read(),
      resource: options.serverUrl,
      now: Date.now,
      redirectUrl,
      // The suite's auth/2025-03-26-oauth-endpoint-fallback serves no metadata; the CLI refuses such a server.
      legacyMetadataFallback: true,
      onAuthorizationUrl: async (url: URL, context: AuthorizationRequestContext) => {
        const current = await listen();
        current.expect(context);
        if (!options.headless) {
          process.stderr.write(`Open this link in a browser to authorize:\n${url.href}\n`);
          return;
        }
        const refused = current.submit(await followToRedirectUri(url, redirectUrl));
        if (refused) throw new Error(refused);
      },
    });
    const { client_id, client_secret } = settings.context as { client_id?: unknown; client_secret?: unknown };
    const preRegistered =
      typeof client_id === 'string' ? { client_id, ...(typeof client_secret === 'string' ? { client_secret } : {}), redirect_uris: [redirectUrl] } : undefined;
    const provider = new ConformanceProvider(inner, preRegistered, options.clientMetadataUrl);

    const url = new URL(options.serverUrl);
    let transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
    let client = new Client({ name: 'delegate-conformance-client', version: '1.0.0' });
    /** Runs `op`; when it needs the user, finishes the authorization and runs it again. */
    const authorized = async <T>(op: () => Promise<T>, reconnect: boolean): Promise<T> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await op();
        } catch (error) {
          if (!(error instanceof UnauthorizedError) || attempt >= MAX_AUTHORIZATIONS_PER_CALL) throw error;
          await transport.finishAuth(await listener!.waitForCode());
          if (reconnect) {
            transport = new StreamableHTTPClientTransport(url, { authProvider: provider });
            client = new Client({ name: 'delegate-conformance-client', version: '1.0.0' });
          }
        }
      }
    };
    await authorized(() => client.connect(transport), true);
    const { tools } = await authorized(() => client.listTools(), false);
    const [tool] = tools;
    if (tool) await authorized(() => client.callTool({ name: tool.name, arguments: {} }), false);
    await client.close();
    process.stderr.write(`scenario ${settings.scenario ?? '(none)'}: connected, ${tools.length} tool(s)${tool ? `, called ${tool.name}` : ''}\n`);
    return 0;
  } finally {
    await listener?.close();
    await rm(home, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`conformance client: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
