// The embedded stack: find-slot and login use the servers that are running
// on the configured ports, and when none is, start all three in this process
// for the length of the command (same ports, same data directory), so one
// command works on a fresh machine. The servers' code is imported only then.
import type { FastifyInstance } from 'fastify';
import { urlsFor } from '../config.js';
import type { Stack, StackOptions } from './contracts.js';
import { CommandFailed } from './errors.js';

const PROBE_TIMEOUT_MS = 1500;

type Probe = 'up' | 'down' | 'foreign';

export async function ensureStack(options: StackOptions): Promise<Stack> {
  const urls = urlsFor(options.ports, options.host);
  const parts = [
    { name: 'authorization server', port: options.ports.auth, probe: probe(`${urls.issuer}/.well-known/oauth-authorization-server`, (b) => b.issuer === urls.issuer) },
    { name: 'calendar backend', port: options.ports.calendar, probe: probe(`${urls.calendarUrl}/.well-known/oauth-protected-resource`, (b) => b.resource !== undefined) },
    { name: 'CalendarAgent', port: options.ports.agent, probe: probe(`${new URL(urls.agentUrl).origin}/.well-known/oauth-protected-resource/mcp`, (b) => b.resource === urls.agentUrl) },
  ];
  const states = await Promise.all(parts.map((p) => p.probe));

  const foreign = parts.find((_, i) => states[i] === 'foreign');
  if (foreign) throw new CommandFailed(`Port ${foreign.port} is used by another program, not delegate's ${foreign.name}. Choose other ports with --auth-port, --calendar-port and --agent-port.`);
  if (states.every((s) => s === 'up')) return { embedded: false, urls, close: async () => {} };
  if (states.some((s) => s === 'up')) {
    const missing = parts.filter((_, i) => states[i] === 'down').map((p) => `the ${p.name} (port ${p.port})`);
    throw new CommandFailed(`Some of delegate's servers are running but not ${missing.join(' and ')}. Start it, or stop the others and let this command start all three.`);
  }
  return startEmbedded(options, urls);
}

async function startEmbedded(options: StackOptions, urls: ReturnType<typeof urlsFor>): Promise<Stack> {
  const servers = await import('./servers.js');
  const store = servers.openDataStore(options.paths);
  const started: FastifyInstance[] = [];
  try {
    await servers.bootstrap(store, options.paths, urls, Date.now());
    const auth = await servers.buildAuth(store, options.paths, urls.issuer, options.logger);
    const calendar = await servers.buildCalendar(store, urls.calendarUrl, urls.issuer, options.logger);
    const agent = await servers.buildAgent(options.paths, urls, options.logger);
    for (const [app, name, port] of [
      [auth, 'authorization server', options.ports.auth],
      [calendar, 'calendar backend', options.ports.calendar],
      [agent, 'CalendarAgent', options.ports.agent],
    ] as const) {
      await servers.listen(app, name, options.host, port);
      started.push(app);
    }
  } catch (error) {
    await servers.closeAll(started, store);
    throw error;
  }
  return { embedded: true, urls, close: () => servers.closeAll(started, store) };
}

/** Whether delegate's server answers at `url`: up, down (nothing listens), or foreign (something else answers). */
async function probe(url: string, isOurs: (body: Record<string, unknown>) => boolean): Promise<Probe> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
  } catch (error) {
    const code = (error as { cause?: { code?: string } }).cause?.code;
    return code === 'ECONNREFUSED' ? 'down' : 'foreign';
  }
  try {
    const body = (await res.json()) as Record<string, unknown>;
    return res.ok && isOurs(body) ? 'up' : 'foreign';
  } catch {
    return 'foreign';
  }
}
