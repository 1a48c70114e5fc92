// `delegate audit`: who acted for whom, through which chain of agents, on
// what, and when, from the hash-chained audit log; `--verify` checks the chain
// and names the first edited, deleted or reordered record, and any record it
// cannot verify (its content unreadable), checking on past it.
import type { Paths } from '../../config.js';
import type { AuditRecord } from '../../store/index.js';
import { EXIT_ERROR, EXIT_OK, UsageError } from '../errors.js';
import type { CliIo } from '../io.js';
import { printable } from '../shown.js';
import { parseSince, readOnlyNotice, withStore } from './admin-store.js';

export interface AuditArgs {
  paths: Paths;
  grant?: string;
  since?: string;
  json: boolean;
  verify: boolean;
}

export async function auditCommand(args: AuditArgs, io: CliIo): Promise<number> {
  const since = args.since === undefined ? undefined : parseSince(args.since, io.now());
  if (args.since !== undefined && since === undefined) throw new UsageError('--since takes an ISO 8601 time or a span such as 30m, 2h, 7d.');
  return withStore(args.paths, async (store) => {
    if (args.verify) {
      const verdict = await store.verifyAudit();
      if (args.json) io.stdout.write(`${JSON.stringify(verdict)}\n`);
      if (!verdict.ok) {
        if (!args.json) io.stderr.write(verdict.problem === 'unverifiable' ? `delegate: ${verdict.message}\n` : `delegate: The audit log has been tampered with. ${verdict.message}\n`);
        return EXIT_ERROR;
      }
      if (!args.json) io.stdout.write(`The audit log is intact: ${verdict.count} records, head ${verdict.head}.\n`);
      return EXIT_OK;
    }
    const records = await store.listAudit({ ...(args.grant ? { grant: args.grant } : {}), ...(since !== undefined ? { since } : {}) });
    const names = new Map((await store.listUsers()).map((u) => [u.id, u.name]));
    if (args.json) {
      io.stdout.write(`${JSON.stringify(records.map((r) => ({ ...r, user_name: r.user ? (names.get(r.user) ?? null) : null })))}\n`);
      return EXIT_OK;
    }
    for (const r of records) io.stdout.write(`${line(r, names)}\n`);
    if (records.length === 0) io.stderr.write('No audit records match.\n');
    return EXIT_OK;
  }, readOnlyNotice(io));
}

function line(r: AuditRecord, names: Map<string, string>): string {
  const who = r.user ? `for ${names.get(r.user) ?? r.user}` : '';
  // The chain ends with the user, already named after "for".
  const actors = r.actors.filter((a) => a !== r.user);
  // An administrator's change (detail.by) was made by the CLI, not by the client it names (a registered agent).
  const by = typeof r.detail.by === 'string' ? r.detail.by : undefined;
  const chain = actors.length > 0 ? `by ${actors.join(' ← ')}` : by ? `by ${by}` : r.client ? `by ${r.client}` : '';
  const changed = by ? [r.client, r.detail.name].filter((x) => typeof x === 'string' && x !== names.get(r.user ?? '')) : [];
  // A record an agent reported (POST /audit) is its word, checked against the token it names; say whose word it is.
  const reporter = typeof r.detail.reported_by === 'string' ? `reported by ${r.detail.reported_by}` : '';
  const what = [...changed, r.detail.tool, r.detail.decision, r.detail.scope, r.detail.outcome].filter((x) => typeof x === 'string').join(' ');
  // Every part is stored data, some of it an agent's or a client's word: printed escaped, it cannot forge or erase a line.
  return [new Date(r.at).toISOString(), `#${r.seq}`, r.event, who, chain, reporter, r.grant ?? '', r.resource ?? '', what]
    .filter((x) => x !== '')
    .map(printable)
    .join('  ');
}
