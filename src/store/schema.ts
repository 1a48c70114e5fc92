// The SQLite schema, as numbered migrations applied in order (tracked by
// PRAGMA user_version). docs/storage.md describes each table in words.
// Times are milliseconds since the epoch; JSON columns hold arrays or objects.

/**
 * The oldest schema version the commands that only look (a read-only store) still read: the migrations after it
 * change nothing they read. Found in review: the revocations migration (a CHECK that now allows 'key') made
 * read-only copies of databases written by the previous build unreadable, though no read depends on it.
 */
export const READABLE_FROM_VERSION = 5;

export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_jwk TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
  );

  CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_owner INTEGER NOT NULL DEFAULT 0,
    time_zone TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE UNIQUE INDEX users_one_owner ON users (is_owner) WHERE is_owner = 1;

  CREATE TABLE clients (
    client_id TEXT PRIMARY KEY,
    client_name TEXT,
    kind TEXT NOT NULL CHECK (kind IN ('public', 'confidential', 'agent')),
    secret_hash TEXT,
    redirect_uris TEXT NOT NULL,
    grant_types TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    jwks TEXT,
    resource TEXT,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );

  CREATE TABLE resources (
    url TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    agent_client_id TEXT REFERENCES clients (client_id),
    downstream TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );

  CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );

  CREATE TABLE used_once (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
  );

  CREATE TABLE auth_requests (
    id TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    client_id TEXT NOT NULL REFERENCES clients (client_id),
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    state TEXT,
    code_challenge TEXT NOT NULL,
    csrf_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );

  CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    client_id TEXT NOT NULL REFERENCES clients (client_id),
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    authorization_details TEXT NOT NULL,
    max_depth INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
  );
  CREATE INDEX grants_by_user ON grants (user_id);

  CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    user_id TEXT NOT NULL,
    family_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  );

  CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    client_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoked_reason TEXT
  );
  CREATE INDEX token_families_by_grant ON token_families (grant_id);

  CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families (id),
    grant_id TEXT NOT NULL REFERENCES grants (id),
    client_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
  );
  CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

  CREATE TABLE issued_tokens (
    jti TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES grants (id),
    family_id TEXT,
    parent_jti TEXT,
    client_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
  );
  CREATE INDEX issued_tokens_by_grant ON issued_tokens (grant_id);
  CREATE INDEX issued_tokens_by_family ON issued_tokens (family_id);
  CREATE INDEX issued_tokens_by_parent ON issued_tokens (parent_jti);

  CREATE TABLE calendars (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('file', 'url')),
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (user_id, name)
  );
  `,
  // issue 3: the audit log, the revocation list, sign-in sessions bound to a request.
  `
  CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    user_id TEXT,
    client_id TEXT,
    grant_id TEXT,
    resource TEXT,
    actors TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
  );
  CREATE INDEX audit_log_by_grant ON audit_log (grant_id);
  CREATE INDEX audit_log_by_time ON audit_log (at);

  CREATE TABLE revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'token')),
    id TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
  );
  CREATE INDEX revocations_by_keep ON revocations (keep_until);

  ALTER TABLE sessions ADD COLUMN bound_request_hash TEXT;
  CREATE INDEX grants_by_user_client ON grants (user_id, client_id, resource);
  ALTER TABLE auth_requests ADD COLUMN authorization_details TEXT NOT NULL DEFAULT '[]';
  `,
  // issue 4: the last good copy of each ICS feed, its validators (ETag,
  // Last-Modified) and the outcome of the last fetch; goes with its calendar.
  `
  CREATE TABLE calendar_feeds (
    calendar_id TEXT PRIMARY KEY REFERENCES calendars (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    body TEXT,
    etag TEXT,
    last_modified TEXT,
    fetched_at INTEGER,
    changed_at INTEGER,
    checked_at INTEGER,
    error TEXT,
    error_at INTEGER
  );
  `,
  // issue 5: device authorization requests (RFC 8628)
  `
  CREATE TABLE device_authorizations (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL REFERENCES clients (client_id),
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    state TEXT NOT NULL UNIQUE,
    code_verifier TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'consumed')),
    code TEXT,
    interval_sec INTEGER NOT NULL,
    last_polled_at INTEGER,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
  );
  `,
  // review of the pages: a session is good for one request only (cookies are not isolated by port, RFC 6265
  // §8.5), and says how it began, since only the owner's signed link says who asked for that request. Sessions
  // bound to nothing (the 12-hour password sessions of before) end here; the bound ones were all owner links.
  `
  DELETE FROM sessions WHERE bound_request_hash IS NULL;
  ALTER TABLE sessions ADD COLUMN signed_in_by TEXT NOT NULL DEFAULT 'owner_link' CHECK (signed_in_by IN ('owner_link', 'password'));
  `,
  // `delegate keys rotate --now` lists the withdrawn key ids on the revocation list, so that a resource server
  // that fetched the JWKS before the withdrawal refuses what they signed within moments, not when its copy of
  // the JWKS expires. SQLite cannot change a CHECK in place: the table is copied, and its sequence kept, so that
  // a resource server's cursor stays valid.
  `
  CREATE TABLE revocations_next (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'token', 'key')),
    id TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
  );
  INSERT INTO revocations_next (seq, kind, id, revoked_at, keep_until) SELECT seq, kind, id, revoked_at, keep_until FROM revocations;
  DELETE FROM sqlite_sequence WHERE name = 'revocations_next';
  INSERT INTO sqlite_sequence (name, seq) SELECT 'revocations_next', seq FROM sqlite_sequence WHERE name = 'revocations';
  DROP TABLE revocations;
  ALTER TABLE revocations_next RENAME TO revocations;
  CREATE INDEX revocations_by_keep ON revocations (keep_until);
  `,
  // An authorization request may leave out redirect_uri when the client registered one URI (OAuth 2.1 §4.1.1);
  // its code's /token request must send redirect_uri only if the authorization request did (RFC 6749 §4.1.3).
  // Every earlier request and code sent it.
  `
  ALTER TABLE auth_requests ADD COLUMN redirect_uri_given INTEGER NOT NULL DEFAULT 1;
  ALTER TABLE auth_codes ADD COLUMN redirect_uri_given INTEGER NOT NULL DEFAULT 1;
  `,
  // A client's grants by its id alone (grants_by_user_client leads with the user): a metadata document that changes
  // its redirect URIs ends its client's live grants (client-documents.ts), which read every grant without it. The
  // sweep's "clients without grants" reads it too.
  `
  CREATE INDEX grants_by_client ON grants (client_id);
  `,
  // `delegate approve`: the owner signs in for a request another app made (an MCP client doing its own OAuth), which
  // must always show the consent page and never name the app as the owner's own. SQLite cannot change a CHECK in
  // place: the table is copied (nothing references it).
  `
  CREATE TABLE sessions_next (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    bound_request_hash TEXT,
    signed_in_by TEXT NOT NULL DEFAULT 'owner_link' CHECK (signed_in_by IN ('owner_link', 'owner_approval', 'password'))
  );
  INSERT INTO sessions_next (id_hash, user_id, created_at, expires_at, bound_request_hash, signed_in_by)
    SELECT id_hash, user_id, created_at, expires_at, bound_request_hash, signed_in_by FROM sessions;
  DROP TABLE sessions;
  ALTER TABLE sessions_next RENAME TO sessions;
  `,
  // The user's calendars as the consent page listed them, kept with its pending request: Approve reads the ticks
  // against that list, not against the calendars there are by then (found in review, s23new: a calendar the person
  // unticked, removed before Approve, left every remaining box ticked and the grant became "all, later ones too").
  // A request pending across the upgrade has no such list: it ends, and its page says to start again.
  `
  DELETE FROM auth_requests;
  ALTER TABLE auth_requests ADD COLUMN calendars_shown TEXT NOT NULL DEFAULT '[]';
  `,
  // The URL a feed's copy and its validators came from (the last of its redirects), the only one the validators are
  // sent to (found in review, s24feeds: If-None-Match went to every hop). A copy kept before: the feed's own URL.
  `
  ALTER TABLE calendar_feeds ADD COLUMN validators_from TEXT;
  `,
  // A spent refresh token is honoured once more within the grace window, not any number of times (found in review,
  // s24bcp: each presentation minted another live token of the family, and the copies rotated on their own for ever,
  // none ever a replay). `retried_at`: its one retry. `superseded_at`: another token of its family was rotated while
  // this one was unused, so presenting it is a replay. `forked`: a retry left the family with a second unused token,
  // which the family's next rotation supersedes (RFC 9700 §4.14.2). Families forked before the upgrade are found.
  `
  ALTER TABLE refresh_tokens ADD COLUMN retried_at INTEGER;
  ALTER TABLE refresh_tokens ADD COLUMN superseded_at INTEGER;
  ALTER TABLE token_families ADD COLUMN forked INTEGER NOT NULL DEFAULT 0;
  UPDATE token_families SET forked = 1
    WHERE (SELECT count(*) FROM refresh_tokens r WHERE r.family_id = token_families.id AND r.used_at IS NULL) > 1;
  `,
  // Account names are unique ignoring case, in the database: two processes adding `alice` and `Alice` at the same
  // instant both passed the look for the name (users.ts: accountNamedLike) and both inserted (found in review,
  // s24accounts). Names are ASCII, which NOCASE folds. A database that already holds such names keeps them: each but
  // the oldest of a group (created_at, then name: the one userByNameIgnoringCase finds) is marked case_duplicate and
  // left out of the index, so that it still opens and each account keeps working by its exact name; the oldest stays
  // in, so no new account can take the name in any case.
  `
  ALTER TABLE users ADD COLUMN case_duplicate INTEGER NOT NULL DEFAULT 0;
  UPDATE users SET case_duplicate = 1 WHERE EXISTS (
    SELECT 1 FROM users AS older
    WHERE older.name = users.name COLLATE NOCASE AND (older.created_at, older.name) < (users.created_at, users.name)
  );
  CREATE UNIQUE INDEX users_name_nocase ON users (name COLLATE NOCASE) WHERE case_duplicate = 0;
  `,
  // `delegate users remove`: an account is retired, not deleted, so that its grants (revoked), their tokens and the
  // audit records that name them stay as they were. `removed_at`: when; the row's name becomes `removed:<id>:<name>`
  // (a colon is in no account's name), which frees the name for a new account with another id, inheriting nothing.
  // The triggers keep anything new from being attached to a retired account by a server that read it just before
  // the removal (a consent being approved, a sign-in being started): the write fails, and nothing is added.
  `
  ALTER TABLE users ADD COLUMN removed_at INTEGER;
  CREATE TRIGGER sessions_of_removed_accounts BEFORE INSERT ON sessions
    WHEN (SELECT removed_at FROM users WHERE id = NEW.user_id) IS NOT NULL BEGIN SELECT RAISE(ABORT, 'the account was removed'); END;
  CREATE TRIGGER auth_requests_of_removed_accounts BEFORE INSERT ON auth_requests
    WHEN (SELECT removed_at FROM users WHERE id = NEW.user_id) IS NOT NULL BEGIN SELECT RAISE(ABORT, 'the account was removed'); END;
  CREATE TRIGGER grants_of_removed_accounts BEFORE INSERT ON grants
    WHEN (SELECT removed_at FROM users WHERE id = NEW.user_id) IS NOT NULL BEGIN SELECT RAISE(ABORT, 'the account was removed'); END;
  CREATE TRIGGER calendars_of_removed_accounts BEFORE INSERT ON calendars
    WHEN (SELECT removed_at FROM users WHERE id = NEW.user_id) IS NOT NULL BEGIN SELECT RAISE(ABORT, 'the account was removed'); END;
  `,
  // Each account's last sign-in (`users list`, Store.lastSignIns) read from the audit log's sign-ins alone: it was a
  // scan of the whole log, every record read to find the few `sign_in` ones (found in review, s26). Partial, so that
  // only a sign-in's record costs a write to it; by account, then time, so that an account's latest is one seek.
  `
  CREATE INDEX audit_log_sign_ins ON audit_log (user_id, at) WHERE event = 'sign_in';
  `,
  // A family's refresh tokens by family, then expiry: the sweep asks of each expired token whether its family has a
  // live one, and through (family_id) alone that walked every row of the family (found in review, s34year: 2,000
  // candidates × 2,880 rows of a 30-day family refreshed every 15 minutes, sweeps of 2 s and more with the event loop
  // held). It serves every lookup by family_id (rotation, revocation, the foreign key's checks) as the old one did,
  // which it replaces. An index changes nothing a reader relies on: READABLE_FROM_VERSION stays.
  `
  CREATE INDEX refresh_tokens_by_family_expiry ON refresh_tokens (family_id, expires_at);
  DROP INDEX refresh_tokens_by_family;
  `,
];
