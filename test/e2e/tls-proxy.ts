// https reverse proxies of the tests' own, for a deployment published at https URLs as the README's deployment
// paragraph sets it up: a certificate made by openssl (which the processes of the deployment, and the CLI that
// reaches it, trust through NODE_EXTRA_CA_CERTS, as they would a private CA), and TLS servers on 127.0.0.1
// forwarding every request, path unchanged, to a server's port. Each notes what it forwarded and from where. A
// deployment that must not look like this computer's own is published at names under .test (DEPLOYMENT_DOMAIN), which
// the hook TEST_NAMES_HOOK resolves to 127.0.0.1 in the Node processes and TEST_NAMES_CHROMIUM_ARGS in Chromium.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../support/ports.js';

/** The reserved names (RFC 6761 §6.2) a remote-looking deployment is published at: `<name>.delegate.test`. */
export const DEPLOYMENT_DOMAIN = 'delegate.test';

/** The `node --import` hook answering `*.delegate.test` with 127.0.0.1 (fixtures/delegate-test-names.mjs). */
export const TEST_NAMES_HOOK = fileURLToPath(new URL('./fixtures/delegate-test-names.mjs', import.meta.url));

/** The environment that gives a Node process the hook (NODE_OPTIONS reaches every process it starts, too; quoted for a path with spaces). */
export function testNamesEnv(): Record<string, string> {
  return { NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import="${TEST_NAMES_HOOK}"`].filter(Boolean).join(' ') };
}

/** Chromium's flag for the same: its resolver maps the names to 127.0.0.1 and asks no DNS server. */
export const TEST_NAMES_CHROMIUM_ARGS = [`--host-resolver-rules=MAP *.${DEPLOYMENT_DOMAIN} 127.0.0.1`];

export interface Proxy {
  url: string;
  /** The requests it forwarded: method and path. */
  seen: string[];
  /** The addresses its connections came from. */
  peers: Set<string>;
  /** The Authorization headers of those requests, as sent. */
  authorizations: string[];
  server: Server;
}

export interface Certificate {
  /** The PEM file to give as NODE_EXTRA_CA_CERTS. */
  certFile: string;
  key: string;
  cert: string;
}

/** A self-signed certificate for the host names given (P-256, one day), written into `dir`. */
export async function proxyCertificate(dir: string, hostNames: string[] = ['localhost']): Promise<Certificate> {
  const certFile = join(dir, 'proxy-cert.pem');
  const keyFile = join(dir, 'proxy-key.pem');
  const names = hostNames.map((name) => `DNS:${name}`).join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', `/CN=${hostNames[0]}`, '-addext', `subjectAltName=${names}`], {
    stdio: 'ignore',
  });
  return { certFile, key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8') };
}

/**
 * A TLS-terminating reverse proxy listening on 127.0.0.1, published at https://<hostName>:<port> (localhost unless
 * given), forwarding every request, path unchanged, to `upstream`'s port on 127.0.0.1; as Host it sends on the
 * client's (Caddy's default) or its upstream's address (nginx's). It appends the client's address to
 * X-Forwarded-For, after whatever the client sent there, as nginx's `$proxy_add_x_forwarded_for` does.
 */
export async function reverseProxy(certificate: Certificate, upstream: number, sendsOwnHost: boolean, hostName = 'localhost'): Promise<Proxy> {
  const port = await freePort();
  const seen: string[] = [];
  const peers = new Set<string>();
  const authorizations: string[] = [];
  const server = createHttpsServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== undefined) authorizations.push(req.headers.authorization);
    const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter((entry) => entry !== undefined).join(', ');
    const headers = { ...req.headers, host: sendsOwnHost ? req.headers.host : `127.0.0.1:${upstream}`, 'x-forwarded-proto': 'https', 'x-forwarded-for': forwardedFor };
    const onward = httpRequest({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    onward.on('error', () => res.writeHead(502).end());
    req.pipe(onward);
  });
  server.on('connection', (socket: Socket) => peers.add(String(socket.remoteAddress)));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `https://${hostName}:${port}`, seen, peers, authorizations, server };
}

/** The address a proxy listens on. */
export function listeningAddress(proxy: Proxy): string {
  return (proxy.server.address() as AddressInfo).address;
}

export async function closeProxy(proxy: Proxy): Promise<void> {
  proxy.server.closeAllConnections();
  await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
}

