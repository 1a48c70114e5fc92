// What the interoperability tests share: `delegate serve` (the built CLI) on
// spare ports with its own data directory, and the owner as a person: runs
// `delegate approve '<the client's authorization URL>'` (the built CLI, in
// that data directory), opens the address it prints in a scripted browser,
// approves the consent page and stops at the client's redirect.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OAuthClientProvider, OAuthDiscoveryState } from '@modelcontextprotocol/sdk/client/auth.js';
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js';
import { Browser, parseConsentForm } from '../support/oauth-flow.js';
import { freePort } from '../support/ports.js';
import { killLeftovers, startCli, startServer, type Running } from '../e2e/run.js';

export interface Servers {
  home: string;
  ports: string[];
  issuer: string;
  agentUrl: string;
  serve: Running;
  stop(): Promise<void>;
}

export async function startServers(): Promise<Servers> {
  const home = join(await mkdtemp(join(tmpdir(), 'delegate-interop-')), 'home');
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  const ports = ['--auth-port', String(auth), '--calendar-port', String(calendar), '--agent-port', String(agent)];
  const serve = await startServer(['serve', ...ports], home);
  return {
    home,
    ports,
    issuer: `http://127.0.0.1:${auth}`,
    agentUrl: `http://127.0.0.1:${agent}/mcp`,
    serve,
    async stop() {
      serve.child.kill('SIGTERM');
      await serve.done;
      killLeftovers();
      await rm(join(home, '..'), { recursive: true, force: true });
    },
  };
}

/**
 * The person: runs `delegate approve --no-browser '<url>'` in the servers' data directory (on their authorization
 * server's port), opens the address it prints, approves, and returns where the authorization server sent the browser
 * (the client's redirect URI with code, state and iss), without following it.
 */
export async function approveAuthorization(servers: Pick<Servers, 'home' | 'issuer'>, authorizationUrl: URL): Promise<URL> {
  const cli = startCli(['approve', '--no-browser', '--auth-port', new URL(servers.issuer).port, authorizationUrl.href], servers.home);
  const browser = new Browser();
  const consent = await browser.follow(await cli.loginUrl);
  const run = await cli.done;
  if (run.code !== 0) throw new Error(`delegate approve exited ${run.code ?? run.signal}:\n${run.stderr}`);
  if (consent.status !== 200) throw new Error(`expected the consent page, got ${consent.status}: ${consent.html.slice(0, 300)}`);
  const answer = await browser.post(new URL('/consent', consent.url).href, { ...parseConsentForm(consent.html), decision: 'approve' });
  if (!answer.location) throw new Error(`consent answered ${answer.status} without a redirect`);
  return new URL(answer.location, consent.url);
}

/** An OAuthClientProvider as an MCP client author writes one: state in memory, the browser scripted. */
export class InMemoryProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  savedTokens?: OAuthTokens;
  verifier?: string;
  discovery?: OAuthDiscoveryState;
  authorizationUrls: URL[] = [];
  landedOn?: URL;

  constructor(private readonly onAuthorize: (url: URL) => Promise<URL>) {}

  get redirectUrl(): string {
    return 'http://127.0.0.1:33418/oauth/callback';
  }
  get clientMetadata(): OAuthClientMetadata {
    return {
      client_name: 'SDK interop client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state(): string {
    return 'interop-state-0123456789abcdef';
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed): void {
    this.client = info;
  }
  tokens() {
    return this.savedTokens;
  }
  saveTokens(tokens: OAuthTokens): void {
    this.savedTokens = tokens;
  }
  async redirectToAuthorization(url: URL): Promise<void> {
    this.authorizationUrls.push(url);
    this.landedOn = await this.onAuthorize(url);
  }
  saveCodeVerifier(verifier: string): void {
    this.verifier = verifier;
  }
  codeVerifier(): string {
    if (!this.verifier) throw new Error('no verifier');
    return this.verifier;
  }
  saveDiscoveryState(state: OAuthDiscoveryState): void {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
}
