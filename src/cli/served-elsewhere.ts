// Whether the servers this data directory's agent is bound to run from this very directory: an administrator's
// change (a grant revoked, a key rotated, an account added) is written to the database in the data directory, and
// servers still holding another one (the directory swapped for a copy, or a backup moved over the database, while
// they ran) do not see it. Found in review (s22store): `grants revoke` said every token was refused while the running
// servers kept honouring them. The servers stop by themselves when their database is replaced (watchDatabase in
// src/cli/servers.ts); this says so at once, and covers servers that do not.
import { decodeJwt } from 'jose';
import { DEFAULT_AGENT_CLIENT_ID } from '../agent/identity.js';
import type { Paths } from '../config.js';
import type { ClientRecord, Store } from '../store/index.js';

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
