// The three servers as the CLI builds them from a data directory (src/cli/servers.ts: bootstrap, buildAuth,
// buildCalendar, buildAgent with the store's audit sink), in this process, on free loopback ports: for tests that
// need the real wiring without starting `delegate serve`.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { bootstrap, buildAgent, buildAuth, buildCalendar, closeAll, openDataStore, storeAudit } from '../../src/cli/servers.js';
import { resolvePaths, type Paths } from '../../src/config.js';
import type { Store } from '../../src/store/index.js';
import { freePort } from './ports.js';

export interface CliServers {
  home: string;
  paths: Paths;
  store: Store;
  urls: { issuer: string; calendarUrl: string; agentUrl: string };
  /** Closes the servers and the store, and removes the data directory. */
  close(): Promise<void>;
}

/** A new data directory (named after `prefix`) and its three servers, listening. */
export async function startCliServers(prefix: string): Promise<CliServers> {
  const home = await mkdtemp(join(tmpdir(), prefix));
  const paths = resolvePaths({ DELEGATE_HOME: home });
  const store = await openDataStore(paths);
  const [auth, calendar, agent] = [await freePort(), await freePort(), await freePort()];
  const urls = { issuer: `http://127.0.0.1:${auth}`, calendarUrl: `http://127.0.0.1:${calendar}`, agentUrl: `http://127.0.0.1:${agent}/mcp` };
  await bootstrap(store, paths, urls, Date.now());
  const apps: FastifyInstance[] = [];
  const parts: Array<[FastifyInstance, number]> = [
    [await buildAuth(store, paths, urls.issuer), auth],
    [await buildCalendar(store, paths, urls.calendarUrl, urls.issuer), calendar],
    [await buildAgent(paths, urls, undefined, storeAudit(store)), agent],
  ];
  for (const [app, port] of parts) {
    await app.listen({ port, host: '127.0.0.1' });
    apps.push(app);
  }
  return {
    home,
    paths,
    store,
    urls,
    close: async () => {
      await closeAll(apps, store);
      await rm(home, { recursive: true, force: true });
    },
  };
}
