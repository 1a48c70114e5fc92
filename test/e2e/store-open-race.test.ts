// Several processes opening a new data directory's database at the same
// moment (as serve-auth, serve-calendar and serve-agent do when started
// together) all succeed: the schema's migrations are applied once, by one of
// them, all at once (none finds the schema half set up and takes it for an
// older database to upgrade: found by CI, two `serve` started together).
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { builtModule, repoRoot } from './built.js';

const PROCESSES = 6;
let dir: string;

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Opened {
  code: number | null;
  stderr: string;
  /** The migrations the process applied, as openStore's `migrated` told them: [from, to]. */
  migrated: number[][];
}

function openInProcess(path: string, startAt: number, setUpBefore: string[] = []): Promise<Opened> {
  const script = `
    import { openStore } from ${JSON.stringify(builtModule('store/index.js'))};
    // Start together: wait for the same instant, so the processes race for the fresh file.
    while (Date.now() < ${startAt}) {}
    const store = openStore(${JSON.stringify(path)}, {
      setUpBefore: ${JSON.stringify(setUpBefore)},
      migrated: (from, to) => process.stdout.write(JSON.stringify([from, to]) + '\\n'),
    });
    await store.listResources();
    store.close();
  `;
  return new Promise((resolve) => {
    const child = spawn(process.env.DELEGATE_E2E_SERVER_NODE || process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('close', (code) => resolve({ code, stderr, migrated: stdout.split('\n').filter(Boolean).map((line) => JSON.parse(line) as number[]) }));
  });
}

describe('opening a new database from several processes at once', () => {
  it(`${PROCESSES} processes all open it, and its schema is applied once`, { timeout: 60_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'delegate-store-race-'));
    const path = join(dir, 'home', 'delegate.db');
    const startAt = Date.now() + 1500;
    const results = await Promise.all(Array.from({ length: PROCESSES }, () => openInProcess(path, startAt)));
    expect(results.map((r) => r.code), results.map((r) => r.stderr).join('\n')).toEqual(Array(PROCESSES).fill(0));
    expectSetUpOnce(results);
  });

  // The database another process has just created is empty for a moment: beside a key (serve-agent writes its own at
  // start), that is not an emptied database (refused since review s22store), and none of them refuses it.
  it(`${PROCESSES} processes all open it beside an agent key written just before`, { timeout: 60_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'delegate-store-race-'));
    await mkdir(join(dir, 'home'), { mode: 0o700 });
    const agentKey = join(dir, 'home', 'agent-key.json');
    await writeFile(agentKey, '{}', { mode: 0o600 });
    const path = join(dir, 'home', 'delegate.db');
    const startAt = Date.now() + 1500;
    const results = await Promise.all(Array.from({ length: PROCESSES }, () => openInProcess(path, startAt, [agentKey])));
    expect(results.map((r) => r.code), results.map((r) => r.stderr).join('\n')).toEqual(Array(PROCESSES).fill(0));
    expectSetUpOnce(results);
  });
});

/** One process set the new database up, from schema 0 to the current one in one go; no other applied anything. */
function expectSetUpOnce(results: Opened[]): void {
  const applied = results.flatMap((r) => r.migrated);
  expect(applied).toHaveLength(1);
  expect(applied[0]![0]).toBe(0);
  expect(applied[0]![1]).toBeGreaterThan(1);
}
