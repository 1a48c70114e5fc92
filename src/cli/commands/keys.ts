// `delegate keys rotate`: the administrator's rotation of the authorization
// server's signing key. A new key becomes current; the old one stays
// published at the JWKS URL until the last access token it signed expires,
// or, with --now (a key thought leaked), is withdrawn at once. Every agent's
// identity statement is re-signed with the new key in the same transaction.
// Running servers pick the new key up on their next signature; none needs a restart.
import { existsSync } from 'node:fs';
import { DEFAULT_LIFETIMES } from '../../authz/context.js';
import { rotateSigningKeys } from '../../authz/key-rotation.js';
import type { Paths } from '../../config.js';
import { CommandFailed, EXIT_OK } from '../errors.js';
import type { CliIo } from '../io.js';
import { shown } from '../shown.js';
import { withStore } from './admin-store.js';
import { warnIfServedElsewhere } from '../served-elsewhere.js';
import { delegateCommandLine } from './mcp-config.js';

export interface RotateKeysArgs {
  paths: Paths;
  /** Withdraw the old key at once (it leaked) rather than keep it published until its tokens expire. */
  now: boolean;
  json: boolean;
}

export async function keysRotateCommand(args: RotateKeysArgs, io: CliIo): Promise<number> {
  if (!existsSync(args.paths.db)) throw new CommandFailed(`There is no signing key to rotate yet: the authorization server creates one when it first starts (${delegateCommandLine(['serve'], io.env)}).`);
  const at = io.now();
  const result = await withStore(args.paths, async (store) => {
    // The servers of this data directory sign access tokens for DEFAULT_LIFETIMES.accessTokenSec at most.
    const rotated = await rotateSigningKeys(store, { now: at, maxTokenLifetimeMs: DEFAULT_LIFETIMES.accessTokenSec * 1000, withdraw: args.now, by: 'cli' }).catch((error: unknown) => {
      throw new CommandFailed(error instanceof Error ? error.message : String(error));
    });
    await warnIfServedElsewhere(store, args.paths, io.stderr);
    return rotated;
  });
  const until = new Date(result.publishedUntil).toISOString();
  if (args.json) {
    io.stdout.write(
      `${JSON.stringify({ kid: result.kid, previous_kid: result.previousKid, withdrawn: args.now, previous_published_until: until, statements_resigned: result.resigned, statements_not_verified: result.notVerified })}\n`,
    );
  } else {
    io.stdout.write(shown`New signing key ${result.kid}: new tokens are signed with it from now on, by running servers too.\n`);
    io.stdout.write(
      args.now
        ? shown`The old key ${result.previousKid} is withdrawn, with any key retired before it: tokens they signed are refused by the authorization server now, and by delegate's resource servers within moments (the revocation list names the keys).\n`
        : shown`The old key ${result.previousKid} stays published until ${until}, when the last token it signed expires.\n`,
    );
    io.stdout.write(`Agent identity statements re-signed: ${result.resigned.length}.\n`);
  }
  if (result.notVerified.length > 0) {
    io.stderr.write(shown`delegate: These agents' identity statements did not verify before the rotation and were left as they were; register them again: ${result.notVerified.join(', ')}.\n`);
  }
  return EXIT_OK;
}
