// https reverse proxies of the tests' own, for a deployment published at https URLs as the README's deployment
// paragraph sets it up: a certificate for localhost made by openssl (which the processes of the deployment, and the
// CLI that reaches it, trust through NODE_EXTRA_CA_CERTS, as they would a private CA), and TLS servers on loopback
// forwarding every request, path unchanged, to a server's port. Each notes what it forwarded. `publicAddress` is an
// address of this machine that is not loopback, for a deployment that must not look like this computer's own.
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../support/ports.js';

export interface Proxy {
  url: string;
  /** The requests it forwarded: method and path. */
  seen: string[];
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

/** A self-signed certificate for localhost, and for the IP addresses given (P-256, one day), written into `dir`. */
export async function localhostCertificate(dir: string, addresses: string[] = []): Promise<Certificate> {
  const certFile = join(dir, 'proxy-cert.pem');
  const keyFile = join(dir, 'proxy-key.pem');
  const names = ['DNS:localhost', ...addresses.map((a) => `IP:${a}`)].join(',');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', `subjectAltName=${names}`], {
    stdio: 'ignore',
  });
  return { certFile, key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8') };
}

/**
 * A TLS-terminating reverse proxy at https://localhost:<port> (on loopback), or at https://<address>:<port> (on that
 * address of this machine), forwarding every request, path unchanged, to `upstream`'s port on loopback; as Host it
 * sends on the client's (Caddy's default) or its upstream's address (nginx's).
 */
export async function reverseProxy(certificate: Certificate, upstream: number, sendsOwnHost: boolean, address?: string): Promise<Proxy> {
  const port = await freePort();
  const seen: string[] = [];
  const authorizations: string[] = [];
  const server = createHttpsServer({ key: certificate.key, cert: certificate.cert }, (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.headers.authorization !== undefined) authorizations.push(req.headers.authorization);
    const headers = { ...req.headers, host: sendsOwnHost ? req.headers.host : `127.0.0.1:${upstream}`, 'x-forwarded-proto': 'https' };
    const onward = httpRequest({ host: '127.0.0.1', port: upstream, method: req.method, path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    onward.on('error', () => res.writeHead(502).end());
    req.pipe(onward);
  });
  await new Promise<void>((resolve) => server.listen(port, address ?? '127.0.0.1', resolve));
  return { url: `https://${address ?? 'localhost'}:${port}`, seen, authorizations, server };
}

export async function closeProxy(proxy: Proxy): Promise<void> {
  proxy.server.closeAllConnections();
  await new Promise<void>((resolve) => proxy.server.close(() => resolve()));
}

/** An IPv4 address of this machine that is not loopback (as another computer would reach it), if it has one. */
export function publicAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a !== undefined && a.family === 'IPv4' && !a.internal)?.address;
}
