// The SQLite driver's native module built for another Node.js (node_modules
// installed, then Node.js changed): the error names the driver and what to
// do, not the database. Found in review (s26node): it said "The database …
// could not be used: The module '…/better_sqlite3.node' was compiled against a
// different Node.js version using NODE_MODULE_VERSION 115 …".
import { describe, expect, it } from 'vitest';
import { asStoreError } from '../../src/store/index.js';

/** The error Node.js's process.dlopen gives for a native module of another ABI, as it words it. */
function dlopenError(): Error {
  const error = new Error(
    "The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 115. This version of Node.js requires\nNODE_MODULE_VERSION 137. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`).",
  );
  return Object.assign(error, { code: 'ERR_DLOPEN_FAILED' });
}

describe('asStoreError: a driver built for another Node.js', () => {
  it('names the driver and says to run npm install again, not that the database is at fault', () => {
    const error = asStoreError(dlopenError(), '/home/me/.local/share/delegate/delegate.db', 'read');
    expect(error.code).toBe('STORE_OPEN_FAILED');
    expect(error.message).toBe(
      `The SQLite driver in node_modules (better-sqlite3) was built for another version of Node.js than this one (${process.version}), so no database can be opened. Run \`npm install\` again with this Node.js.`,
    );
    expect(error.message).not.toContain('\n');
  });
});
