// Vitest global setup: the tests run as after `npm link` (README, Install), with this checkout's launcher as
// `delegate` on PATH (and the node running them as `node`), so the hints they read say `delegate …` as the README
// shows them. The hints' other forms (no `delegate` on PATH, as `npm install && npx delegate …` leaves it) are tested
// with a PATH of their own, in
// test/cli/invocation.test.ts and test/e2e/hint-invocation.test.ts.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'delegate-on-path-'));
  symlinkSync(fileURLToPath(new URL('../../bin/delegate', import.meta.url)), join(dir, 'delegate'));
  // And the node running the tests as PATH's `node`, which the launcher (`#!/usr/bin/env node`) runs under: a hint says
  // bare `delegate` only then (invocation.ts). CI's Node 22 and 24 legs run the tests on a node that is not PATH's own.
  symlinkSync(process.execPath, join(dir, 'node'));
  process.env.PATH = [dir, process.env.PATH ?? ''].join(delimiter);
  return () => rmSync(dir, { recursive: true, force: true });
}
