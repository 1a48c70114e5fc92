// Mutation review s32 (M3): a client metadata document's Cache-Control is held within the server's bounds
// (src/authz/client-documents.ts: at least MIN_CACHE_SEC, 60 s; at most MAX_CACHE_SEC, a day). A document served
// with `max-age` of a year is fetched again after a day, so a client that changed its redirect URIs (or was
// taken down) is not served from a year-old copy; one served with `max-age=0` is not fetched on every request
// within the minute (the host is not made to answer each /authorize or /token). Real HTTPS document server on
// loopback, real store, the server's own default bounds, a clock moved by hand. Kills the upper bound and the
// lower bound dropped from the lifetime (client-documents.ts:231), which both survived
// test/authz/client-document-fetch.test.ts and test/authz/client-id-metadata-document.test.ts.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientDocuments } from '../../src/authz/client-documents.js';
import { openStore, type Store } from '../../src/store/index.js';

let root: string;
let store: Store;
let server: Server;
let base: string;
let cert: Buffer;
const bodies = new Map<string, { body: unknown; cacheControl: string }>();
const hits = new Map<string, number>();

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'delegate-mut-cimd-'));
  const [keyFile, certFile] = [join(root, 'key.pem'), join(root, 'cert.pem')];
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
  cert = readFileSync(certFile);
  server = createServer({ key: readFileSync(keyFile), cert }, (req, res) => {
    const path = req.url ?? '';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const doc = bodies.get(path);
    if (!doc) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': doc.cacheControl }).end(JSON.stringify(doc.body));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  base = `https://localhost:${(server.address() as { port: number }).port}`;
  store = openStore(join(root, 'delegate.db'));
}, 30_000);

afterAll(async () => {
  store?.close();
  server?.closeAllConnections();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  rmSync(root, { recursive: true, force: true });
});

function serve(path: string, redirect: string, cacheControl: string): string {
  const id = `${base}${path}`;
  bodies.set(path, {
    cacheControl,
    body: { client_id: id, client_name: 'Docs App', redirect_uris: [redirect], grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' },
  });
  return id;
}

/** The server's own bounds (no minCacheSec/maxCacheSec given), its fetches held to the tests' CA, localhost allowed. */
function documents(now: () => number): ClientDocuments {
  return new ClientDocuments(store, now, { ca: cert, privateHosts: ['localhost'], resolve: async () => [{ address: '127.0.0.1', family: 4 }] });
}

describe('a client metadata document’s cache lifetime is bounded (mutation review s32 M3)', () => {
  it('max-age of a year: fetched again after a day, and its changed redirect URI is the one served', async () => {
    let clock = Date.now();
    const docs = documents(() => clock);
    const id = serve('/year.json', 'https://app.example/old-cb', 'max-age=31536000');
    expect((await docs.find(id, '127.0.0.1'))?.redirectUris).toEqual(['https://app.example/old-cb']);
    serve('/year.json', 'https://app.example/new-cb', 'max-age=31536000');
    clock += 86_400_000 + 60_000;
    expect((await docs.find(id, '127.0.0.1'))?.redirectUris).toEqual(['https://app.example/new-cb']);
    expect(hits.get('/year.json')).toBe(2);
  });

  it('max-age=0: fetched once for the requests of the next minute, then again', async () => {
    let clock = Date.now();
    const docs = documents(() => clock);
    const id = serve('/zero.json', 'https://app.example/cb', 'max-age=0');
    for (let i = 0; i < 5; i++) {
      expect((await docs.find(id, '127.0.0.1'))?.clientId).toBe(id);
      clock += 5_000;
    }
    expect(hits.get('/zero.json')).toBe(1);
    clock += 60_000;
    await docs.find(id, '127.0.0.1');
    expect(hits.get('/zero.json')).toBe(2);
  });
});
