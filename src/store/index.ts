// The store: the Store interface, its records, and the SQLite implementation.
export * from './types.js';
export { openSqliteStore as openStore, openSqliteStoreReadOnly as openStoreReadOnly, StoreError, AccountRemovedError, asStoreError, CURRENT_SCHEMA_VERSION, schemaVersionOf, type OpenOptions, LONGEST_ACCESS_TOKEN_MS } from './sqlite.js';
