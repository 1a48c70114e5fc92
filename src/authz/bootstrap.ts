// First-start setup of a local installation, done as its administrator: the
// owner account (with the demo calendar), the calendar backend as a resource,
// and CalendarAgent as a registered agent bound to its URL. Idempotent: a
// later start with the same settings changes nothing.
import { CALENDAR_DETAIL_TYPE, SCOPE_BUSY_READ, SCOPE_FIND_SLOT, SCOPE_FREEBUSY_READ, canonicalResource, sameOriginOrLoopbackAlias, sameResourceOrLoopbackAlias } from '../delegation/index.js';
import type { Store, UserRecord } from '../store/index.js';
import type { AgentProfile } from './agent-statement.js';
import { onIssuerOrigin, registerAgent, type AgentMove } from './agents.js';
import { randomId } from './crypto.js';
import { accountNamedLike, ownerNameBeside } from './users.js';

export interface LocalSetup {
  issuer: string;
  ownerName: string;
  /** Who runs the agents of this installation, and how to reach them. */
  operator: AgentProfile['operator'];
  softwareVersion: string;
  timeZone: string;
  /** The calendar every new owner starts with. */
  demoCalendarPath: string;
  calendarUrl: string;
  agentUrl: string;
  agentClientId: string;
  agentPublicJwk: Record<string, unknown>;
}

export async function bootstrapLocal(store: Store, setup: LocalSetup, now: number): Promise<{ owner: UserRecord; agentMove?: AgentMove }> {
  await refuseUrlsTaken(store, setup);
  const owner = await ensureOwner(store, setup, now);
  await store.upsertResource({
    url: setup.calendarUrl,
    name: 'Calendar',
    scopes: [SCOPE_FREEBUSY_READ],
    agentClientId: null,
    downstream: [],
    createdAt: now,
  });
  const { move } = await registerAgent(
    store,
    setup.issuer,
    {
      clientId: setup.agentClientId,
      resourceUrl: setup.agentUrl,
      // list_busy needs busy:read; a client asks for it when it first needs it (step-up).
      scopes: [SCOPE_FIND_SLOT, SCOPE_BUSY_READ],
      jwks: { keys: [setup.agentPublicJwk] },
      downstream: [{ type: CALENDAR_DETAIL_TYPE, resource: setup.calendarUrl, scopes: [SCOPE_FREEBUSY_READ] }],
      profile: {
        name: 'CalendarAgent',
        softwareId: 'delegate/calendar-agent',
        softwareVersion: setup.softwareVersion,
        operator: setup.operator,
        description: 'Finds free time in your calendar, so that a meeting can be scheduled.',
        limitations: [
          'Sees only when you are busy, never what your events are',
          'Cannot create, change or delete events',
          'Looks only at the calendars and as far ahead as you allow',
        ],
      },
    },
    now,
    // A start on another agent port moves CalendarAgent, which ends the grants for its old URL: on the record.
    { by: 'setup', onlyIfMoved: true },
  );
  return { owner, ...(move ? { agentMove: move } : {}) };
}

/**
 * An agent bound to the calendar backend's URL would receive its tokens: introspect them and exchange
 * CalendarAgent's calendar tokens as their recipient. `agents register` refuses that URL once the backend is on
 * record (src/authz/agents.ts), not before the first start, nor on a directory where an agent got it before that
 * refusal. Found in review: setup then put the backend's record back, bound to no agent, and left the agent's own
 * record bound to the backend. So setup stops and says how to free the URL (a registration elsewhere rebinds it); the same
 * for an agent on the issuer's origin, and for the backend or CalendarAgent themselves there.
 */
async function refuseUrlsTaken(store: Store, setup: LocalSetup): Promise<void> {
  // The calendar backend and CalendarAgent on the issuer's origin: registerAgent refuses that too, but only after the
  // backend's record is written; refused here first, so that nothing is (found in review, s18).
  for (const [url, what] of [
    [setup.calendarUrl, "the calendar backend's URL"],
    [setup.agentUrl, "CalendarAgent's URL"],
  ] as const) {
    if (onIssuerOrigin(setup.issuer, url)) throw new Error(`${url}, ${what}, is on the origin of the authorization server (${setup.issuer}); give it an origin of its own.`);
  }
  const calendarUrl = canonicalResource(setup.calendarUrl) ?? setup.calendarUrl;
  // CalendarAgent on the backend's origin: registerAgent refuses it too (calendarOriginOf), after the backend's record is written.
  if (sameOriginOrLoopbackAlias(calendarUrl, setup.agentUrl)) {
    throw new Error(`${setup.agentUrl}, CalendarAgent's URL, is on the origin of the calendar backend (${calendarUrl}); give it an origin of its own.`);
  }
  // Another agent reading a URL on CalendarAgent's origin downstream: registerAgent refuses it too (calendarOriginOf),
  // after the owner, the calendar and the backend's record are written (found in review, regress20a).
  for (const other of await store.listResources()) {
    if (other.agentClientId === setup.agentClientId) continue;
    const read = other.downstream.find((d) => sameOriginOrLoopbackAlias(d.resource, setup.agentUrl));
    if (read) {
      const who = other.agentClientId ?? other.url;
      throw new Error(
        `${setup.agentUrl}, CalendarAgent's URL, is on the origin of ${read.resource}, which the agent ${who} reaches downstream on users' behalf. ` +
          `Give CalendarAgent another --agent-port, or register ${who} with another --calendar-url (delegate agents register ${who} …).`,
      );
    }
  }
  const agents = (await store.listClients('agent')).filter((c) => c.clientId !== setup.agentClientId && c.resource !== null);
  // Any loopback name for the backend's host and port counts: it reaches the same listener (sameResourceOrLoopbackAlias);
  // so does any path on its origin (found in review: an agent at <backend>/mcp was taken).
  const taker = agents.find((c) => sameOriginOrLoopbackAlias(c.resource!, calendarUrl));
  if (taker) {
    const where = sameResourceOrLoopbackAlias(taker.resource!, calendarUrl)
      ? `the calendar backend's URL${taker.resource === calendarUrl ? '' : ` (${calendarUrl}) by another loopback name`}, and would receive its tokens`
      : `on the origin of the calendar backend (${calendarUrl}), where its tokens are presented`;
    throw new Error(
      `The agent ${taker.clientId} is bound to ${taker.resource}, ${where}. ` +
        `Register it at a URL of its own (delegate agents register ${taker.clientId} --url …), or use another --calendar-port.`,
    );
  }
  // An agent registered before the first start signs for the default issuer, so `agents register` could not tell that
  // its URL would be on this one's origin (found in review, regress18b: it then introspected handed tokens, whose
  // audience is the issuer, as active).
  const onOrigin = agents.find((c) => onIssuerOrigin(setup.issuer, c.resource!));
  if (onOrigin) {
    throw new Error(
      `The agent ${onOrigin.clientId} is bound to ${onOrigin.resource}, on the origin of the authorization server (${setup.issuer}), and would receive its tokens. ` +
        `Register it at a URL of its own (delegate agents register ${onOrigin.clientId} --url …), or use another --auth-port.`,
    );
  }
}

/**
 * The local owner, set up now if there is none yet: by the servers' first start (with the demo calendar), or by a
 * command that needs the owner before any server started (`calendar add`, without it). Each change on the audit log
 * in its own transaction (found in review, s24: the owner, who may sign in without a password, appeared with no
 * record; `calendar add` set one up so until s26). Another process setting the owner up between the look and the
 * write (there is one owner: a UNIQUE index) leaves that owner, with what that process gave it. Found in review
 * (s26): `calendar add`s run at once on a fresh data directory said SQLite's "UNIQUE constraint failed: users.is_owner".
 * Another process taking the name picked for the owner between the look and the write (`delegate users add root`
 * beside the first `serve`) has the name looked for again (found in review, s28race: `serve` said SQLite's "UNIQUE
 * constraint failed: users.name", and the next start named the owner `root-owner`).
 */
export async function ensureOwner(store: Store, setup: { ownerName: string; timeZone: string; demoCalendarPath?: string }, now: number): Promise<UserRecord> {
  const existing = await store.ownerUser();
  if (existing) return existing;
  const { owner, added } = await addOwner(store, setup, now);
  if (!added) return owner;
  if (setup.demoCalendarPath !== undefined) {
    const demo = { id: randomId('cal'), userId: owner.id, name: 'demo', kind: 'file' as const, source: setup.demoCalendarPath, createdAt: now };
    await store.addCalendar(demo, { event: { event: 'calendar_added', user: owner.id, detail: { by: 'setup', name: demo.name, kind: demo.kind, source: demo.source } }, at: now });
  }
  return owner;
}

/** How many names addOwner tries, each taken by another process as it was written, before it gives up. */
const OWNER_NAME_ATTEMPTS = 5;

/**
 * Adds the owner under the first name no account has (ownerNameBeside), with its record; or `added: false` with the
 * owner another process set up meanwhile. A name another process took between the look and the write is looked for
 * again, a bounded number of times: each retry follows an account added at that very moment.
 */
async function addOwner(store: Store, setup: { ownerName: string; timeZone: string }, now: number): Promise<{ owner: UserRecord; added: boolean }> {
  for (let attempt = 1; ; attempt++) {
    const owner: UserRecord = {
      id: randomId('usr'),
      name: await ownerNameBeside(store, setup.ownerName),
      passwordHash: null,
      isOwner: true,
      timeZone: setup.timeZone,
      createdAt: now,
    };
    try {
      await store.createUser(owner, { event: { event: 'user_added', user: owner.id, detail: { by: 'setup', name: owner.name, owner: true } }, at: now });
      return { owner, added: true };
    } catch (error) {
      const other = await store.ownerUser();
      if (other) return { owner: other, added: false };
      if (attempt >= OWNER_NAME_ATTEMPTS || !(await accountNamedLike(store, owner.name))) throw error;
    }
  }
}
