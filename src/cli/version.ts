// The package's version, for --version and the MCP clientInfo: read from
// package.json beside dist/ (one small file; no JSON import, so the built
// layout needs nothing copied).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../config.js';

let cached: string | undefined;

export function packageVersion(): string {
  if (cached === undefined) {
    try {
      cached = String((JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version ?? '0.0.0');
    } catch {
      cached = '0.0.0';
    }
  }
  return cached;
}
