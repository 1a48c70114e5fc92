// `delegate grants list|show|revoke`: the delegations a user has given, with
// their limits, and revocation, which ends every token derived from a grant
// at the authorization server at once and at the resource servers within
// moments (they follow the revocation list).
import { NAMELESS_APP, registeredName } from '../../authz/app-name.js';
import type { Paths } from '../../config.js';
import { parseCalendarDetail, parseScope, type CalendarDetail } from '../../delegation/index.js';
import type { AccountName, GrantRecord, Store } from '../../store/index.js';
import { CommandFailed, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { namedClient, shown } from '../shown.js';
import { accountFor, readOnlyNotice, removedField, shownAccount, withStore } from './admin-store.js';
import { warnIfServedElsewhere } from '../served-elsewhere.js';

interface GrantView {
  id: string;
  /** The account's name (one removed by `users remove`: the name it had, and user_removed_at), else its id. */
  user: string;
  user_removed_at?: string;
  client: string;
  client_name: string | null;
  agent: string | null;
  resource: string;
  scopes: string[];
  constraints: CalendarDetail[];
  max_depth: number;
  created_at: string;
  expires_at: string;
  revoked_at: string | null;
  status: 'active' | 'revoked' | 'expired';
}

/** A grant as listed; `accounts`: the store's listAccountNames by id, which names a removed account's grants too. */
async function view(store: Store, g: GrantRecord, now: number, accounts: ReadonlyMap<string, AccountName>): Promise<GrantView> {
  const client = await store.clientById(g.clientId);
  const resource = await store.resourceByUrl(g.resource);
  const user = accounts.get(g.userId);
  return {
    id: g.id,
    user: user?.name ?? g.userId,
    ...removedField(user),
    client: g.clientId,
    client_name: client?.clientName ?? null,
    agent: resource?.name ?? null,
    resource: g.resource,
    scopes: parseScope(g.scope),
    constraints: g.authorizationDetails.flatMap((d) => {
      const parsed = parseCalendarDetail(d);
      return parsed.ok ? [parsed.detail] : [];
    }),
    max_depth: g.maxDepth,
    created_at: new Date(g.createdAt).toISOString(),
    expires_at: new Date(g.expiresAt).toISOString(),
    revoked_at: g.revokedAt === null ? null : new Date(g.revokedAt).toISOString(),
    status: g.revokedAt !== null ? 'revoked' : g.expiresAt <= now ? 'expired' : 'active',
  };
}

/**
 * The app as the text lines name it: its registered name, which proves nothing (any app may call itself
 * "delegate CLI"), then always its id, which tells two such apps apart; the same form as `delegate audit`.
 */
function appOf(v: GrantView): string {
  const name = registeredName({ clientName: v.client_name });
  return name !== undefined ? namedClient(name, v.client) : `${NAMELESS_APP} (${v.client})`;
}

/** Each calendar entry's limits, with its place when the grant has several (each allows its own there, RFC 9396), as the grants page lists them. */
function limits(v: GrantView): string {
  const at = (c: CalendarDetail) => (v.constraints.length > 1 ? ` at ${c.locations.join(',')}` : '');
  return v.constraints
    .map((c) => `${c.calendars ? `calendars ${c.calendars.join(',')}` : 'all calendars, including ones added later'}${c.lookahead_days !== undefined ? `, ${c.lookahead_days} days ahead` : ''}${at(c)}`)
    .join('; ');
}

export async function grantsListCommand(args: { paths: Paths; user?: string; all: boolean; json: boolean }, io: CliIo): Promise<number> {
  const now = io.now();
  const views = await withStore(args.paths, async (store) => {
    const accounts = await store.listAccountNames();
    const user = await accountFor(store, args.user, accounts, {
      what: 'grants',
      none: `There is no account named ${args.user}.`,
      refuse: (message) => new CommandFailed(message),
      notice: (line) => io.stderr.write(line),
    });
    if (!user) return []; // no owner yet: nothing has been delegated, as agents list and audit find nothing
    const grants = (await store.listGrants(user.id)).filter((g) => args.all || (g.revokedAt === null && g.expiresAt > now));
    const byId = new Map(accounts.map((a) => [a.id, a]));
    return Promise.all(grants.map((g) => view(store, g, now, byId)));
  }, readOnlyNotice(io));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(views)}\n`);
    return EXIT_OK;
  }
  if (views.length === 0) io.stderr.write(args.all ? 'No grants.\n' : 'No active grants. (--all shows revoked and expired ones.)\n');
  for (const v of views) {
    io.stdout.write(shown`${v.id}\t${v.status}\t${v.agent ?? v.resource} via ${appOf(v)}\t${v.scopes.join(' ')}\t${limits(v)}\tuntil ${v.expires_at}\n`);
  }
  return EXIT_OK;
}

export async function grantsShowCommand(args: { paths: Paths; id: string; json: boolean }, io: CliIo): Promise<number> {
  const now = io.now();
  const v = await withStore(args.paths, async (store) => {
    const grant = await store.grantById(args.id);
    if (!grant) throw new CommandFailed(`There is no grant ${args.id}.`);
    return view(store, grant, now, new Map((await store.listAccountNames()).map((a) => [a.id, a])));
  }, readOnlyNotice(io));
  if (args.json) {
    io.stdout.write(`${JSON.stringify(v)}\n`);
    return EXIT_OK;
  }
  io.stdout.write(
    [
      shown`${v.id} (${v.status})`,
      shown`  user:        ${shownAccount(v.user, v.user_removed_at !== undefined)}`,
      shown`  agent:       ${v.agent ?? '?'} at ${v.resource}`,
      shown`  through:     ${appOf(v)}`,
      shown`  scopes:      ${v.scopes.join(' ')}`,
      shown`  limits:      ${limits(v) || 'none'}`,
      shown`  max hops:    ${v.max_depth}`,
      shown`  created:     ${v.created_at}`,
      shown`  expires:     ${v.expires_at}`,
      ...(v.revoked_at ? [shown`  revoked:     ${v.revoked_at}`] : []),
      '',
    ].join('\n'),
  );
  return EXIT_OK;
}

export async function grantsRevokeCommand(args: { paths: Paths; id: string }, io: CliIo): Promise<number> {
  const now = io.now();
  await withStore(args.paths, async (store) => {
    const grant = await store.grantById(args.id);
    if (!grant) throw new CommandFailed(`There is no grant ${args.id}.`);
    const record = { event: 'grant_revoked', user: grant.userId, client: grant.clientId, grant: grant.id, resource: grant.resource, detail: { by: 'owner', via: 'cli' } };
    if (!(await store.revokeGrant(grant.id, now, 'revoked from the command line', record))) {
      io.stderr.write(`${grant.id} was already revoked.\n`);
      return;
    }
    io.stderr.write(`Revoked ${grant.id}: every token derived from it is refused from now on (by the resource servers once their revocation list hears of it, normally within a second).\n`);
    await warnIfServedElsewhere(store, args.paths, io.stderr);
  });
  return EXIT_OK;
}
