// Whether the servers this data directory's agent is bound to run from this very directory: an administrator's
// change (a grant revoked, a key rotated, an account added) is written to the database in the data directory, and
// servers still holding another one (the directory swapped for a copy, or a backup moved over the database, while
// they ran) do not see it. Found in review (s22store): `grants revoke` said every token was refused while the running
// servers kept honouring them. The servers stop by themselves when their database is replaced (watchDatabase in
// src/cli/servers.ts); this says so at once, and covers servers that do not.
import { statSync } from 'node:fs';
import { decodeJwt } from 'jose';
import { DEFAULT_AGENT_CLIENT_ID } from '../agent/identity.js';
import type { Paths } from '../config.js';
import { openStoreReadOnly, schemaVersionOf, type ClientRecord, type Store } from '../store/index.js';
import { CommandFailed } from './errors.js';

/** The issuer an agent's identity statement on record names (for CalendarAgent: where this directory's authorization server was last bound), if any. */
export function statementIssuer(client: ClientRecord | undefined): string | undefined {
  const statement = client?.kind === 'agent' ? client.metadata.agent_statement : undefined;
  if (typeof statement !== 'string') return undefined;
  try {
    const { iss } = decodeJwt(statement);
    return typeof iss === 'string' && /^https?:\/\//.test(iss) ? iss : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The issuer CalendarAgent's statement on record names (statementIssuer), read read-only: nothing is set up or
 * upgraded. Undefined for none, and for a database that is missing, empty (a first start that stopped before its first
 * write) or cannot be read so. For decisions made before a command opens the store to write (logout, serve-auth).
 */
export async function issuerOnRecord(db: string): Promise<string | undefined> {
  try {
    if (statSync(db).size === 0) return undefined;
    const store = openStoreReadOnly(db);
    try {
      return statementIssuer(await store.clientById(DEFAULT_AGENT_CLIENT_ID));
    } finally {
      store.close();
    }
  } catch {
    return undefined;
  }
}

/**
 * After a change the running servers enforce: one line on `stderr` when this directory's authorization server (the
 * issuer on record) answers on this machine's loopback that it runs from another data directory (its
 * Delegate-Data-Directory header, src/data-directory-id.ts). One look, bounded by the probe's first timeout (1.5 s);
 * nothing listening answers at once, and nothing is sent to another user's listener, nor off loopback.
 */
export async function warnIfServedElsewhere(store: Store, paths: Paths, stderr: { write(text: string): unknown }): Promise<void> {
  const issuer = statementIssuer(await store.clientById(DEFAULT_AGENT_CLIENT_ID));
  if (issuer === undefined) return;
  const { runsFromOtherDataDirectory } = await import('./stack.js');
  // A server of another data directory on the recorded address is not proof that this one was replaced (found in
  // review s22new: another installation on the port was told to stop), so the line says both cases.
  const elsewhere = await runsFromOtherDataDirectory(issuer, paths.home).catch(() => false);
  if (!elsewhere) return;
  stderr.write(
    `delegate: The delegate servers at ${issuer} run from another data directory than ${paths.home}: they do not see this change. If this directory was replaced, moved or copied while they ran, start them again from it; if they are another installation's, leave them be.\n`,
  );
}

/**
 * Before a command migrates the database from schema `from` to `to`: exit 1 when this directory's servers run on it
 * (an older build, as this one would have migrated it at its start), since they would go on applying their own rules
 * to the new schema (found in review, s24upgrade). Running here means the authorization server on record answers
 * with this data directory's identity (src/data-directory-id.ts), or, where it sends none (an https issuer), publishes
 * this directory's signing keys (as refuseSecondAddress in src/cli/servers.ts decides). The database is read
 * read-only for that; one too old to read so (or unreadable) is left to the migrating open, unchecked.
 */
export async function refuseUpgradeWhileServed(paths: Paths, from: number, to: number): Promise<void> {
  let recorded: { issuer: string | undefined; kids: string[] };
  try {
    const store = openStoreReadOnly(paths.db);
    try {
      recorded = { issuer: statementIssuer(await store.clientById(DEFAULT_AGENT_CLIENT_ID)), kids: (await store.signingKeys()).map((k) => k.kid) };
    } finally {
      store.close();
    }
  } catch {
    return;
  }
  const { issuer, kids } = recorded;
  if (issuer === undefined) return;
  const served = await servedAs(issuer, paths.home, kids);
  // Servers of this build migrate the database before they listen: one that started since the schema was read (a new
  // `serve` started a moment before this command, found in review s28race) has upgraded it, and is no older delegate.
  if (served !== undefined && (schemaVersionOf(paths.db) ?? from) >= to) return;
  if (served === 'this') {
    throw new CommandFailed(
      `An older delegate (schema ${from}) is serving the data directory ${paths.home}, with its authorization server at ${issuer}; ` +
        `stop it, then run this again to upgrade the database to schema ${to}. Nothing was changed.`,
    );
  }
  // Found in review (s24new4): an older serve stopped with Ctrl-Z (or hung) answers nothing, was taken for none, and
  // the database was migrated under it; resumed, it went on with its own rules on the new schema.
  if (served === 'silent') {
    throw new CommandFailed(
      `Something at ${issuer}, where this data directory's authorization server is on record, accepts connections but does not answer ` +
        `(an older delegate serve stopped with Ctrl-Z, or hung?); resume and stop it, then run this again to upgrade the database ` +
        `${paths.db} from schema ${from} to ${to}. Nothing was changed.`,
    );
  }
}

/**
 * Whether the authorization server at `issuer` runs from the data directory `home` (signing with one of `kids`):
 * 'this'; 'silent' when something there accepts connections and answers neither the metadata nor the JWKS; else
 * undefined (nothing there, another directory's server, or keys that are not this directory's).
 */
async function servedAs(issuer: string, home: string, kids: readonly string[]): Promise<'this' | 'silent' | undefined> {
  const { dataDirectoryAt } = await import('./stack.js');
  const said = await dataDirectoryAt(issuer, home).catch(() => undefined);
  if (said !== undefined) return said === 'this' ? 'this' : undefined;
  const { publishedKeyIds } = await import('./servers.js');
  const published = await publishedKeyIds(issuer);
  if (published === 'silent') return 'silent';
  return published.some((kid) => kids.includes(kid)) ? 'this' : undefined;
}
